"""The run loop end to end: the base trial, trials, export and exact reproduction, resume, the
multi-objective Pareto front."""

import time

import optuna
import pytest

import archspec
from archspec.errors import SearchError
from archspec.search import best_trial, export_trial, load_search, load_study, recipe, run_search
from archspec.search.study import queries as results
from archspec.search.study.records import read_study, read_trial
from archspec.spec import load_spec
from tests.search.stubs import candidates, stub_train

COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


def test_end_to_end_base_trials_export_and_exact_reproduction(write_def, tmp_path, monkeypatch):
    built = []
    real_build = recipe.build

    def recording_build(spec, **kwargs):
        model = real_build(spec, **kwargs)
        built.append({k: tuple(v.shape) for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(recipe, "build", recording_build)
    start = time.perf_counter()
    defn = load_search(write_def(space={"kernels": None}, trials=2))
    result = run_search(defn, quiet=True)
    assert time.perf_counter() - start < 60
    study = result.study
    # the base, then 2 candidates (proposals that rebuilt one of them are not trials)
    assert len(candidates(study)) == 2 and result.added == 3

    base = read_trial(study.trials[0])  # trial 0: the unscaled base, trained like the others
    assert base.role == "base" and base.status == "trained" and study.trials[0].state == PRUNED
    assert base.effective.flops_ratio == 1.0 and base.params == read_study(study).base_params
    assert 0.1 < base.accuracy <= 1.0 and len(base.history) == 1

    best = best_trial(study)
    record = read_trial(best)
    assert best.number > 0 and best.values[0] == record.accuracy
    assert record.latency_ms > 0 and record.status == "trained"

    path, _ = export_trial(study, tmp_path / "best.yaml")
    spec = load_spec(path)  # from the file alone
    rebuilt = archspec.build(spec)
    assert sum(p.numel() for p in rebuilt.parameters()) == record.params
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} in built
    header = path.read_text().splitlines()
    assert f"trial {best.number}" in header[0] and "effective depth" in header[1]

    # retraining the exported spec with the study's recipe and seed reproduces the accuracy
    # exactly (the latency probe the trial ran draws from its own generator)
    from archspec.train.data import load_dataset

    again = recipe.Recipe(defn, load_dataset(defn.data, defn.seed), quiet=True)
    assert again.score(spec, defn.seed).val == record.accuracy


def test_resume_runs_only_the_missing_trials(write_def, tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "train", stub_train([]))
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    path = write_def(trials=2)
    first = run_search(load_search(path), storage=storage, quiet=True)
    second = run_search(load_search(path), storage=storage, trials=3, quiet=True)
    assert first.study.study_name == second.study.study_name
    assert (first.added, second.added) == (3, 1)  # `trials` is a target, not "N more"
    assert run_search(load_search(path), storage=storage, trials=3, quiet=True).added == 0
    assert len(load_study("tiny", storage).trials) == 4  # the base is trained once
    assert len(load_study(str(path), storage).trials) == 4

    changed = write_def(training={"epochs": 2})
    with pytest.raises(SearchError, match=r"different setup \(training\)"):
        run_search(load_search(changed), storage=storage, trials=1, quiet=True)
    with pytest.raises(SearchError, match=r"seed \(0 -> 5\)"):
        run_search(load_search(path), storage=storage, seed=5, trials=1, quiet=True)


def test_free_multi_objective_pareto_front(write_def, tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "train", stub_train([], lambda n: 0.5 + 0.01 * n))
    defn = load_search(
        write_def(
            objectives=["accuracy", "flops"],
            sampler={"name": "nsga2", "population_size": 4},
            trials=5,
        )
    )
    study = run_search(defn, quiet=True).study
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["accuracy", "flops"]
    front = results.pareto_trials(study)
    assert front
    for t in front:  # no trial dominates a front member
        assert not any(
            o.values[0] >= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values
            for o in results.feasible_trials(study)
        )
    path, _ = export_trial(study, tmp_path / "front.yaml")
    assert path.exists()
