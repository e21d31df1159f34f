"""Every ```python block of the README runs exactly as written, in order, in one namespace (as
a reader pastes them into one session), from a folder with the repository's specs/ and
search/. Blocks that read files made by the README's shell steps (a trained bundle, an ONNX
export) are run after those steps: tests/test_readme_after_search.py, and the export blocks
below."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
MADE_BY_SHELL_STEPS = ("runs/tiny/bundle", "resnet18.onnx", "resnet18.xml")


@pytest.mark.slow
def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch):
    from archspec.ops import REGISTRY

    for folder in ("specs", "search"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    monkeypatch.chdir(tmp_path)
    before = set(REGISTRY)
    namespace: dict = {}
    ran = 0
    try:
        for block in BLOCKS:
            if any(marker in block for marker in MADE_BY_SHELL_STEPS):
                continue
            exec(compile(block, "README.md", "exec"), namespace)  # the README's code, as written
            ran += 1
    finally:
        for name in set(REGISTRY) - before:  # the README's example op
            del REGISTRY[name]
    assert ran >= 6
    assert namespace["model"] is not None


@pytest.mark.slow
def test_readme_export_commands_then_their_python_blocks(tmp_path, monkeypatch):
    """`archspec export resnet18 -o resnet18.onnx` and `.xml` as the README gives them, then the
    README's blocks that read those files, as written."""
    import shlex

    from typer.testing import CliRunner

    import archspec.cli.export  # noqa: F401 (registers the command)
    from archspec.cli import app

    monkeypatch.chdir(tmp_path)
    text = (ROOT / "README.md").read_text()
    commands = re.findall(
        r"^(archspec export resnet18 -o resnet18\.(?:onnx|xml)[^#\n]*)", text, re.M
    )
    assert len(commands) == 2, commands
    for command in commands:
        result = CliRunner().invoke(app, shlex.split(command)[1:])
        assert result.exit_code == 0, result.output
    blocks = [b for b in BLOCKS if "resnet18.onnx" in b or "resnet18.xml" in b]
    assert len(blocks) == 2
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)
        assert namespace["logits"].shape == (2, 1000)
