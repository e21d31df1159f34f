"""The README's "After the search" commands for a spec (train -> evaluate -> predict) and its
Python snippet, run exactly as written there (the main job's block needs the full search)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import archspec.cli.train  # noqa: F401 - registers the commands
from archspec.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SECTION = README[README.index("## After the search") :]


def block(language: str, marker: str) -> str:
    [found] = [b for b in re.findall(rf"```{language}\n(.*?)```", SECTION, re.S) if marker in b]
    return found


@pytest.mark.slow
def test_train_evaluate_predict_and_the_python_snippet_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "search").symlink_to(ROOT / "search")
    lines = block("bash", "load_digits").splitlines()  # the main job's block writes the PNG
    [digit_png] = [line for line in lines if line.startswith("python -c ")]
    subprocess.run([sys.executable, "-c", shlex.split(digit_png)[2]], check=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outputs = []
        for line in block("bash", "archspec train search/bases/tiny_effnet.yaml").splitlines():
            args = shlex.split(line, comments=True)
            assert args[0] == "archspec"
            result = CliRunner().invoke(app, args[1:])
            assert result.exit_code == 0, (line, result.output)
            outputs.append(result.output)
        namespace: dict = {}
        exec(block("python", "archspec.load_bundle"), namespace)  # the README's code, as written
    finally:
        torch.set_num_threads(threads)
    train, evaluate, predict = outputs
    assert "bundle: runs/tiny/bundle" in train
    accuracy = float(re.search(r"accuracy (\d\.\d+) on 360 images \(digits, test\)", evaluate)[1])
    assert accuracy == pytest.approx(
        namespace["bundle"].manifest.metrics["test_accuracy"], abs=1e-4
    )
    path, top = predict.strip().split("\t")
    assert (
        path == "digit.png"
        and top.split()[0] == namespace["bundle"].class_names[int(namespace["probs"].argmax())]
    )
