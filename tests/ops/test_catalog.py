"""`archspec ops`: every op with its fields, types, defaults and a one-line doc."""

import pytest
from typer.testing import CliRunner

from archspec.cli import app
from archspec.ops import REGISTRY
from archspec.ops.catalog import catalog, describe

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _commands():
    from archspec.cli import spec  # noqa: F401 - registers the commands


def test_the_listing_names_every_registered_op():
    result = runner.invoke(app, ["ops"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in REGISTRY:
        assert f" {name} " in result.output
    assert "kernel_size, stride=1, padding=0" in result.output


def test_one_op_in_full():
    result = runner.invoke(app, ["ops", "conv2d"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {
        cells[0]: cells[1:]
        for line in result.output.splitlines()
        if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 3
    }
    assert rows["kernel_size"] == ["kernel | [h, w]", "required"]  # what scale rewrites
    assert rows["out_channels"] == ["channels | null", "null"]
    assert rows["padding"] == ["int | [h, w] | 'same' | 'valid' | 'tf_same'", "0"]
    assert rows["groups"] == ["int | 'depthwise'", "1"]
    assert "{op: conv2d, out_channels: 6, kernel_size: [1, 7], padding: [0, 3]}" in result.output


def test_an_unknown_op_is_one_line_and_exit_1():
    result = runner.invoke(app, ["ops", "convv"])
    assert result.exit_code == 1
    assert result.output.strip() == "unknown op 'convv'; did you mean conv2d, concat, std_conv2d?"


def test_every_field_has_a_readable_type_and_every_op_a_summary():
    docs = catalog()
    assert [d.name for d in docs] == sorted(REGISTRY)
    for doc in docs:
        assert doc.summary and len(doc.summary) <= 300, doc.name
        for field in doc.fields:
            assert "any" not in field.type, (doc.name, field)
    window = describe("window_attention")
    assert [(f.name, f.default) for f in window.fields][:3] == [
        ("num_heads", "required"),
        ("window_size", "7"),
        ("shift_size", "0"),
    ]
