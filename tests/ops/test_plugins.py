"""Plugin ops: a module named with `--plugin` (or ARCHSPEC_PLUGINS), and an installed package's
`archspec.ops` entry point, register ops that every command and the Python API can then read."""

from __future__ import annotations

import sys
import textwrap

import pytest
from typer.testing import CliRunner

import archspec
from archspec.cli import app
from archspec.ops import REGISTRY, plugins

runner = CliRunner()

PLUGIN = '''
"""A user's op: x * 2, registered on import."""
import operator

import archspec
from archspec.ops.base import example


@archspec.register
class Double(archspec.Op):
    """Twice its input."""

    op = "double_for_plugin_test"
    examples = (example({}, (3, 4, 4)),)

    def emit(self, graph, args, target, inputs):
        return graph.call_function(operator.mul, (args[0], 2))
'''

ENTRY = '''
"""An installed package's op, declared as an archspec.ops entry point."""
import operator

import archspec
from archspec.ops.base import example


class Halve(archspec.Op):
    """Half its input."""

    op = "halve_for_plugin_test"
    examples = (example({}, (3, 4, 4)),)

    def emit(self, graph, args, target, inputs):
        return graph.call_function(operator.mul, (args[0], 0.5))
'''


def _spec(tmp_path, op: str):
    path = tmp_path / "uses_plugin.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        name: uses_plugin
        input: {{channels: 3, size: 8}}
        layers:
          - {{op: conv2d, out_channels: 4, kernel_size: 3, padding: 1}}
          - {{op: {op}}}
        """)
    )
    return path


@pytest.fixture(autouse=True)
def _forget_plugins(monkeypatch):
    from archspec.cli import spec  # noqa: F401 - registers the commands

    monkeypatch.delenv(plugins.ENV, raising=False)
    before_ops, before_loaded, before_modules = (
        dict(REGISTRY),
        set(plugins._loaded),
        set(sys.modules),
    )
    yield
    for name in set(REGISTRY) - set(before_ops):
        del REGISTRY[name]
        plugins.ORIGINS.pop(name, None)
    plugins._loaded.intersection_update(before_loaded)
    for name in set(sys.modules) - before_modules:
        if "plugin_test" in name:
            del sys.modules[name]


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "my_plugin_test_ops.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_plugin_test_ops"


def test_validate_reads_a_spec_with_a_plugin_op_only_when_the_plugin_is_named(
    tmp_path, plugin_module
):
    spec = str(_spec(tmp_path, "double_for_plugin_test"))
    result = runner.invoke(app, ["validate", spec])
    assert result.exit_code == 1
    assert "unknown op 'double_for_plugin_test'" in result.output
    assert "plugin" in result.output
    result = runner.invoke(app, ["validate", spec, "--plugin", plugin_module])
    assert result.exit_code == 0, result.output
    listing = runner.invoke(app, ["ops"], env={"COLUMNS": "300"})
    row = next(line for line in listing.output.splitlines() if "double_for_plugin_test" in line)
    assert plugin_module in row
    assert "│ archspec" in next(line for line in listing.output.splitlines() if " conv2d " in line)


def test_the_environment_names_plugins_for_every_command(tmp_path, plugin_module, monkeypatch):
    monkeypatch.setenv(plugins.ENV, plugin_module)
    result = runner.invoke(app, ["summary", str(_spec(tmp_path, "double_for_plugin_test"))])
    assert result.exit_code == 0, result.output


def test_a_missing_plugin_is_one_line():
    result = runner.invoke(app, ["validate", "resnet18", "--plugin", "no_such_plugin_test_mod"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "plugin no_such_plugin_test_mod: cannot import it (No module named "
        "'no_such_plugin_test_mod')"
    )


def test_a_plugin_op_named_like_a_built_in_is_refused(tmp_path, monkeypatch):
    (tmp_path / "clash_plugin_test.py").write_text(PLUGIN.replace("double_for_plugin_test", "relu"))
    monkeypatch.syspath_prepend(str(tmp_path))
    result = runner.invoke(app, ["ops", "--plugin", "clash_plugin_test"])
    assert result.exit_code == 1
    assert "op 'relu' is already registered" in result.output


def test_an_entry_point_of_an_installed_package(tmp_path, monkeypatch):
    """A tiny installed distribution: its dist-info declares the op, no pip needed."""
    (tmp_path / "halve_plugin_test.py").write_text(ENTRY)
    info = tmp_path / "halve_plugin_test-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: halve-plugin-test\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[archspec.ops]\nhalve = halve_plugin_test:Halve\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = _spec(tmp_path, "halve_for_plugin_test")
    result = runner.invoke(app, ["validate", str(spec)])  # no --plugin: installed ops load
    assert result.exit_code == 0, result.output
    assert plugins.origin("halve_for_plugin_test").startswith("halve-plugin-test")
    import torch

    model = archspec.build(spec)
    assert model(torch.ones(1, 3, 8, 8)).shape == (1, 4, 8, 8)
