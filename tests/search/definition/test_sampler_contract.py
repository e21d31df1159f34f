"""The contract every entry of the SAMPLERS and PRUNERS tables passes, derived from the tables
(as Optuna's BasicSamplerTestCase): a new entry is covered without new test code."""

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from archspec.errors import SearchError
from archspec.search import load_search, pareto_trials, recipe, run_search
from archspec.search.definition.samplers import PRUNERS, SAMPLERS, make_pruner, make_sampler
from archspec.search.definition.space import suggest
from archspec.search.study.queries import ranked_trials
from archspec.search.study.records import read_trial
from tests.search.stubs import candidates, stub_train

# 22 grid points: enough that two seeds order them differently
FINE = {"width": {"low": 0.5, "high": 1.0, "step": 0.05}, "kernels": {"stage3": [3, 5]}}
STEPLESS = {"width": {"step": None}}  # TINY's width range without its step


def _line(path: Path, start: str) -> int:
    """The 1-based line of `path` that starts with `start`."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line == start)


def _proposals(defn, seed: int, n: int = 6) -> list[dict]:
    """The parameters of the first `n` trials of a fresh study with this sampler and seed."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=defn.directions, sampler=make_sampler(defn, seed))

    def objective(trial: optuna.Trial) -> float:  # deterministic, so model-based steps agree
        candidate = suggest(trial, defn)
        return candidate.width + candidate.kernels["stage3"] / 100

    study.optimize(objective, n_trials=n)
    return [t.params for t in study.trials]


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_factory_returns_an_optuna_sampler(name, write_def):
    defn = load_search(write_def(sampler=name))
    sampler = SAMPLERS[name].factory(defn, 0)
    assert isinstance(sampler, optuna.samplers.BaseSampler)
    assert type(make_sampler(defn, 0)) is type(sampler)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_the_seed_decides_the_proposals(name, write_def):
    defn = load_search(write_def(sampler=name, space=FINE))
    first = _proposals(defn, seed=7)
    assert len(first) == 6 and all(set(p) == {"width", "kernel_stage3"} for p in first)
    assert _proposals(defn, seed=7) == first
    assert _proposals(defn, seed=8) != first  # every sampler in the table draws at random


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_a_search_runs_and_records_every_trial(name, write_def, monkeypatch):
    calls = []
    monkeypatch.setattr(recipe, "train", stub_train(calls))
    defn = load_search(write_def(sampler=name, trials=3))
    study = run_search(defn, quiet=True).study
    assert type(study.sampler) is type(SAMPLERS[name].factory(defn, 0))
    # the base (trial 0) is stored pruned, out of the samplers' history; candidates complete,
    # each a distinct network (a proposal that rebuilt one is not a trial)
    trials = [study.trials[0]] + [t for t, _ in candidates(study)]
    assert [t.state for t in trials[1:]] == [TrialState.COMPLETE] * 3
    records = [read_trial(t) for t in trials]
    assert [r.role for r in records] == ["base", "candidate", "candidate", "candidate"]
    assert all(r.status == "trained" for r in records)
    assert len({r.spec_hash for r in records}) == 4 == len(calls)


def _dominates(a: list[float], b: list[float]) -> bool:
    """(accuracy up, params down): `a` is at least as good everywhere and better somewhere."""
    return a[0] >= b[0] and a[1] <= b[1] and a != b


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_multi_objective_capability(name, write_def, monkeypatch):
    path = write_def(sampler=name, objectives=["accuracy", "params"], trials=3)
    if not SAMPLERS[name].multi_objective:
        with pytest.raises(SearchError) as info:
            load_search(path)
        (problem,) = info.value.problems
        assert problem.message.startswith(f"sampler: {name} optimizes one objective")
        where = problem.location
        assert (where.file, where.line, where.column) == (
            str(path),
            _line(path, f"sampler: {name}"),
            10,
        )
        return
    accuracies = [0.5, 0.9, 0.6, 0.8, 0.7]
    monkeypatch.setattr(recipe, "train", stub_train([], lambda n: accuracies[n - 1]))
    study = run_search(load_search(path), quiet=True).study
    assert len(study.directions) == 2 and len(candidates(study)) == 3
    front, ranked = pareto_trials(study), ranked_trials(study)
    assert front and {t.number for t in front} <= {t.number for t in ranked}
    for trial in ranked:  # the front: exactly the distinct networks nobody dominates
        dominated = any(_dominates(u.values, trial.values) for u in ranked)
        assert (trial in front) is not dominated, (trial.number, trial.values)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_needs_steps_capability(name, write_def):
    assert load_search(write_def(sampler=name)).space.width.step == 0.25
    path = write_def(sampler=name, space=STEPLESS)
    if not SAMPLERS[name].needs_steps:
        defn = load_search(path)
        assert defn.space.width.step is None
        assert isinstance(make_sampler(defn, 0), optuna.samplers.BaseSampler)
        return
    with pytest.raises(SearchError) as info:
        load_search(path)
    (problem,) = info.value.problems
    assert problem.message == f"space.width: the {name} sampler needs a step"
    where = problem.location  # the width range: the line after `width:`
    assert (where.file, where.line, where.column) == (str(path), _line(path, "  width:") + 1, 5)


@pytest.mark.parametrize("name", list(PRUNERS))
def test_factory_returns_an_optuna_pruner(name, write_def):
    defn = load_search(write_def(pruner=name))
    pruner = PRUNERS[name].factory(defn)
    assert isinstance(pruner, optuna.pruners.BasePruner)
    assert type(make_pruner(defn)) is type(pruner)


@pytest.mark.parametrize("name", list(PRUNERS))
def test_pruner_stops_worse_trials_exactly_when_it_prunes(name, write_def, monkeypatch):
    # each trained candidate is worse than the ones before (test_samplers.py's setup)
    monkeypatch.setattr(recipe, "train", stub_train([], lambda n: 1.0 - 0.1 * n))
    space = {"width": {"low": 0.5, "high": 1.0, "step": 0.05}, "kernels": None}
    defn = load_search(
        write_def(
            space=space,
            training={"epochs": 4},
            pruner={"name": name, "n_startup_trials": 1, "n_warmup_steps": 0},
            trials=6,
        )
    )
    study = run_search(defn, quiet=True).study
    found = candidates(study)
    assert len(found) == 6
    pruned = [(t, r) for t, r in found if t.state == TrialState.PRUNED]
    if PRUNERS[name].prunes:
        assert pruned
        assert all(t.intermediate_values and r.status == "pruned" for t, r in pruned)
    else:
        assert pruned == []
        assert [t.state for t, _ in found] == [TrialState.COMPLETE] * 6
        assert all(len(r.history) == 4 for _, r in found if r.status == "trained")
