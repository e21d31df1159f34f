"""`archspec train SPEC KEY=VALUE...`: training.* and data.* set the recipe and the data, other
keys the spec; a bad value is located at the override that wrote it."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

import archspec
import archspec.cli.train
from archspec.cli import app

BASE = Path(__file__).resolve().parents[2] / "search" / "bases" / "tiny_effnet.yaml"


def test_overrides_set_the_recipe_the_data_and_the_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", str(BASE), "data.dataset=digits", "data.limit=300", "training.epochs=1",
            "training.threads=1", "input.size=14", "-q", "-o", "run"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    bundle = archspec.load_bundle(tmp_path / "run" / "bundle")
    assert bundle.spec.input.hw == (14, 14)
    recorded = bundle.manifest.provenance
    assert recorded.recipe["epochs"] == 1 and recorded.data["samples"] == 300
    assert len((tmp_path / "run" / "metrics.csv").read_text().splitlines()) == 2  # header + 1


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("training.epochs=abc", "override training.epochs=abc: training.epochs: input should be "
         "a valid integer (got 'abc')"),
        ("training.epoch=2", "override training.epoch=2: training.epoch: unknown key 'epoch'; "
         "did you mean epochs?"),
        ("input.size=-3", "override input.size=-3: input.size:"),
    ],
)  # fmt: skip
def test_a_bad_override_is_located_at_it(tmp_path, monkeypatch, override, says):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", str(BASE), "--data", "digits", override])
    assert result.exit_code == 1 and result.output.startswith(says), result.output
