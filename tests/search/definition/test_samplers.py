"""Every sampler and pruner of the tables drives a real search."""

import optuna
import pytest

from archspec.search import load_search, recipe, run_search
from archspec.search.definition.samplers import PRUNERS, SAMPLERS
from tests.search.stubs import candidates, stub_train

COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_runs(write_def, monkeypatch, sampler):
    monkeypatch.setattr(recipe, "train", stub_train([]))
    defn = load_search(write_def(sampler=sampler, trials=3))
    study = run_search(defn, quiet=True).study
    assert len(candidates(study)) == 3  # distinct networks, besides the base
    assert type(study.sampler).__name__.lower().startswith(sampler[:3])


@pytest.mark.parametrize("pruner", [n for n, e in PRUNERS.items() if e.prunes])
def test_pruners_stop_worse_trials_from_epoch_reports(write_def, monkeypatch, pruner):
    calls = []
    # each trained candidate is worse than the ones before: the pruner should stop them
    monkeypatch.setattr(recipe, "train", stub_train(calls, lambda n: 1.0 - 0.1 * n))
    space = {"width": {"low": 0.5, "high": 1.0, "step": 0.05}, "kernels": None}
    defn = load_search(
        write_def(
            space=space,
            training={"epochs": 4},
            pruner={"name": pruner, "n_startup_trials": 1, "n_warmup_steps": 0},
            trials=6,
        )
    )
    study = run_search(defn, quiet=True).study
    pruned = [(t, r) for t, r in candidates(study) if t.state == PRUNED]
    assert pruned
    assert all(t.intermediate_values and r.status == "pruned" for t, r in pruned)
