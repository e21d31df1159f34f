"""Every trial of a search with `training.log: [csv, tensorboard]` has its curves under
runs/STUDY/tb/trial-N, and where curves go is not part of the study's setup."""

from archspec.search import load_search, run_search
from archspec.search.study.records import read_trial
from archspec.train.logs import read_scalars


def test_each_trial_logs_its_curves_for_tensorboard(write_def, tmp_path):
    path = write_def(trials=2, training={"epochs": 2, "log": ["csv", "tensorboard"]})
    study = run_search(load_search(path), quiet=True).study
    trained = [t for t in study.trials if (r := read_trial(t)) and r.status == "trained"]
    assert trained
    for trial in trained:
        scalars = read_scalars(tmp_path / "runs" / "tiny" / "tb" / f"trial-{trial.number}")
        assert len(scalars["val/accuracy"]) == 2 and scalars["train/loss"]
    # turning the logs off resumes the same study: they change nothing a trial measures
    again = write_def(trials=2, training={"epochs": 2, "log": ["csv"]})
    assert run_search(load_search(again), quiet=True).added == 0
