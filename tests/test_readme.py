"""Every ```python block of the README runs exactly as written, in order, in one namespace (as
a reader pastes them into one session), from a folder with the repository's specs/ and
search/. Blocks that read files made by the README's shell steps (a trained bundle, an ONNX
export) are run by the tests of those steps instead: tests/test_train*.py, tests/export."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
MADE_BY_SHELL_STEPS = ("runs/tiny/bundle", "resnet18.onnx")


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
