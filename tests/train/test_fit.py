"""Training to completion in a run folder: exact resume after an interruption, metrics.csv,
refused mixes of runs, and a study's trial retrained with its recorded recipe."""

import csv
from pathlib import Path

import pytest

from archspec.errors import SearchError
from archspec.spec import load_spec
from archspec.train.config import Data, Training
from archspec.train.fit import fit

BASES = Path(__file__).resolve().parents[2] / "search" / "bases"
DATA = Data(dataset="digits", limit=240)
RECIPE = Training(epochs=3, batch_size=48, lr=0.005, precise_bn=96)


@pytest.fixture(scope="module")
def spec():
    return load_spec(BASES / "tiny_effnet.yaml")  # has dropout: the global RNG matters too


def rows(folder: Path) -> list[dict]:
    return [
        {k: v for k, v in row.items() if k != "seconds"}
        for row in csv.DictReader((folder / "metrics.csv").open())
    ]


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_weights(spec, tmp_path):
    whole = fit(spec, DATA, RECIPE, tmp_path / "whole")

    def interrupt_after_two(epochs):
        if len(epochs) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(spec, DATA, RECIPE, tmp_path / "cut", on_epoch=interrupt_after_two)
    assert not (tmp_path / "cut" / "bundle").exists()
    assert len(rows(tmp_path / "cut")) == 2
    resumed = fit(spec, DATA, RECIPE, tmp_path / "cut")
    assert resumed.train.resumed == 2
    assert resumed.train.history == whole.train.history
    weights = "weights.safetensors"
    assert (tmp_path / "cut" / "bundle" / weights).read_bytes() == (
        tmp_path / "whole" / "bundle" / weights
    ).read_bytes()
    assert rows(tmp_path / "cut") == rows(tmp_path / "whole")
    assert [int(r["epoch"]) for r in rows(tmp_path / "whole")] == [1, 2, 3]


def test_a_checkpoint_of_another_recipe_is_refused(spec, tmp_path):
    def stop(epochs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(spec, DATA, RECIPE, tmp_path, on_epoch=stop)
    other = RECIPE.model_copy(update={"lr": 0.01})
    with pytest.raises(SearchError, match=r"checkpoint\.pt: written by a run with another recipe"):
        fit(spec, DATA, other, tmp_path)


def test_a_finished_run_is_not_trained_over(spec, tmp_path):
    one = RECIPE.model_copy(update={"epochs": 1})
    fit(spec, DATA, one, tmp_path)
    with pytest.raises(SearchError, match="already holds a trained bundle"):
        fit(spec, DATA, one, tmp_path)
    again = fit(spec, DATA, one, tmp_path, overwrite=True)
    assert again.train.resumed == 0


def test_the_output_must_fit_the_classes(tmp_path):
    fixed = load_spec(
        "name: fixed\ninput: {channels: 1, size: 8}\nlayers:\n"
        "  - {op: flatten}\n  - {op: linear, out_features: 3}\n"
    )
    with pytest.raises(SearchError, match=r"fixed: its output is C \[3\]; the dataset has 10"):
        fit(fixed, DATA, RECIPE, tmp_path)


@pytest.mark.parametrize("content", [b"garbage\n", b"PK\x03\x04" + b"\x00" * 40])
def test_a_damaged_checkpoint_is_one_line_without_unsafe_advice(spec, tmp_path, content):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "checkpoint.pt").write_bytes(content)
    with pytest.raises(SearchError) as info:
        fit(spec, DATA, RECIPE, tmp_path)
    message = str(info.value)
    assert "checkpoint.pt: not a readable checkpoint" in message and "\n" not in message
    assert "weights_only=False" not in message and "weights_only set to False" not in message


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda s: s.pop("optimizer"), "damaged checkpoint (no 'optimizer')"),
        (lambda s: s.update(seed="0"), "damaged checkpoint ('seed' is str)"),
        (lambda s: s["epochs"][0].pop("lr"), "epoch row 1 is not"),
        (lambda s: s["epochs"][0].update(train_loss=float("nan")), "not a finite number"),
        (lambda s: s["model"].update(extra=[1, 2]), "weight 'extra' is not a tensor"),
        (lambda s: s.update(order=s["order"].float()), "generator state is not a byte tensor"),
        (lambda s: s["optimizer"].update(param_groups=[]), "training state does not fit this run"),
    ],
)
def test_resume_checks_the_whole_checkpoint_before_using_it(spec, tmp_path, damage, says):
    import torch

    def stop(epochs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(spec, DATA, RECIPE, tmp_path, on_epoch=stop)
    path = tmp_path / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    damage(state)
    torch.save(state, path)
    with pytest.raises(SearchError) as info:
        fit(spec, DATA, RECIPE, tmp_path)
    message = str(info.value)
    assert says in message and "\n" not in message and "remove it to start over" in message
