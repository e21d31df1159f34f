"""The README's "Overrides and extends:" commands, run exactly as written there (the extending
file written from its YAML block, in order)."""

import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import archspec.cli.search  # noqa: F401 - registers the commands
from archspec.cli import app
from archspec.search import load_search

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SECTION = README[README.index("### Overrides and `extends:`") : README.index("### Training curves")]


@pytest.mark.slow
def test_the_readme_overrides_and_extends_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "search", tmp_path / "search")
    commands, written = [], []
    for language, body in re.findall(r"```(\w+)\n(.*?)```", SECTION, re.S):
        if language == "yaml":
            name = body.splitlines()[0].removeprefix("# ").strip()
            (tmp_path / name).write_text(body)
            written.append(name)
        else:
            commands += [line for line in body.splitlines() if line.strip()]
    assert written == ["search/digits_random.yaml"] and len(commands) == 3
    for line in commands:
        args = shlex.split(line)
        assert args[0] == "archspec"
        result = CliRunner().invoke(app, args[1:])
        assert result.exit_code == 0, (line, result.output)
    assert (tmp_path / "runs" / "digits_quick.db").exists()
    assert (tmp_path / "runs" / "digits_random.db").exists()
    scaled = yaml.safe_load((tmp_path / "runs" / "wide16.yaml").read_text())
    assert scaled["input"]["size"] == 16
    random_def = load_search(tmp_path / "search" / "digits_random.yaml")
    assert (random_def.sampler.name, random_def.training.batch_size) == ("random", 64)
