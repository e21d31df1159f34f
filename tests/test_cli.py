"""The CLI: exit codes, one located line per problem, never a traceback."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from archspec.cli import app, main  # noqa: F401

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _commands():
    from archspec.cli import analysis, export, search, spec  # noqa: F401


def run(*args):
    return runner.invoke(app, list(args))


def test_validate_ok():
    result = run("validate", "specs/resnet18.yaml", "resnet50")
    assert result.exit_code == 0, result.output
    assert "ok  specs/resnet18.yaml" in result.output


def test_validate_reports_located_errors_and_exits_1(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: b\ninput: {channels: 3, size: 8}\nlayers:\n  - {op: conv2d, kernal_size: 3}\n"
    )
    result = run("validate", "specs/resnet18.yaml", str(bad))
    assert result.exit_code == 1
    assert (
        f"{bad}:4:18: conv2d has no parameter 'kernal_size'; did you mean kernel_size?"
        in result.output
    )
    assert "Traceback" not in result.output


def test_summary_table_has_totals():
    result = run("summary", "specs/resnet18.yaml")
    assert result.exit_code == 0, result.output
    assert "11,689,512" in result.output
    markdown = run("summary", "specs/resnet18.yaml", "--format", "markdown").output
    assert "| layer4.1.conv2 | conv2d | (512,7,7) | 2,359,296 |" in markdown


def test_summary_json():
    result = run("summary", "resnet18", "--format", "json")
    data = json.loads(result.stdout)
    assert data["params"] == 11_689_512
    assert data["nodes"]["fc"]["shape"] == [1000]


def test_schema_is_json_schema_with_one_variant_per_op():
    result = run("schema")
    schema = json.loads(result.stdout)
    variants = [b["then"]["$ref"].split("/")[-1] for b in schema["$defs"]["Item"]["allOf"]]
    titles = [schema["$defs"][name]["title"] for name in variants]
    assert "op conv2d" in titles and "block instance or stage" in titles
    assert schema["required"] == ["name", "input", "layers"]


def test_console_script_prints_one_line_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: \xff\n")
    proc = subprocess.run(
        [sys.executable, "-m", "archspec", "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert (
        proc.stderr.strip()
        == f"{bad}:1:7: not UTF-8 text (byte 0xff); a spec must be a UTF-8 YAML file"
    )
