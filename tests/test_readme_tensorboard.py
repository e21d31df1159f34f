"""The README's "Training curves" commands as written: the search line runs, and the folder the
tensorboard line opens holds one run per trained trial, read back with tensorboard's reader."""

import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archspec.cli.search  # noqa: F401 - registers the commands
from archspec.cli import app
from archspec.train.logs import read_scalars

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SECTION = README[README.index("### Training curves") : README.index("## Searching on many")]


@pytest.mark.slow
def test_the_readme_tensorboard_example_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "search", tmp_path / "search")
    [block] = re.findall(r"```bash\n(.*?)```", SECTION, re.S)
    search, board = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert search[0] == "archspec" and board[:2] == ["tensorboard", "--logdir"]
    result = CliRunner().invoke(app, search[1:])
    assert result.exit_code == 0, result.output
    runs = sorted(Path(board[2]).iterdir())
    assert runs and all(p.name.startswith("trial-") for p in runs)
    for run in runs:
        assert read_scalars(run)["val/accuracy"]
