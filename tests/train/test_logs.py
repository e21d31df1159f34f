"""training.log: [csv, tensorboard]: event files with the per-step loss and learning rate and the
per-epoch validation accuracy, for `archspec train` and for every trial of a search, read back
with tensorboard's own reader."""

import pytest

import archspec
from archspec.train.config import Data, Training
from archspec.train.fit import fit
from archspec.train.logs import read_scalars


def test_archspec_train_writes_tensorboard_curves(tmp_path):
    recipe = Training(epochs=2, batch_size=64, threads=1, log=["csv", "tensorboard"])
    result = fit(
        archspec.load_spec("search/bases/tiny_effnet.yaml"),
        Data(dataset="digits", limit=400),
        recipe,
        tmp_path / "run",
    )
    scalars = read_scalars(tmp_path / "run" / "tb")
    epochs = result.train.epochs
    assert [v for _, v in scalars["val/accuracy"]] == pytest.approx(
        [row.val_accuracy for row in epochs]
    )
    steps = len(scalars["train/loss"])
    assert steps == len(scalars["train/lr"]) and steps % 2 == 0 and steps >= 2
    assert [s for s, _ in scalars["train/loss"]] == list(range(1, steps + 1))
    assert (tmp_path / "run" / "metrics.csv").exists()


def test_no_tensorboard_unless_asked(tmp_path):
    fit(
        archspec.load_spec("search/bases/tiny_effnet.yaml"),
        Data(dataset="digits", limit=400),
        Training(epochs=1, batch_size=64, threads=1),
        tmp_path / "run",
    )
    assert not (tmp_path / "run" / "tb").exists()
