"""One trial: constraints on the built network before training, one training per network, the
base reused, out of memory as an infeasible candidate."""

import math

import optuna
import pytest
import torch

import archspec
from archspec.search import best_trial, load_search, recipe, run_search
from archspec.search.report import counts
from archspec.search.study import queries as results
from archspec.search.study.records import REPEAT_KEY, read_trial
from tests.search.stubs import candidates, repeats, stub_train

COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


def test_constraints_reject_before_any_training_without_a_fake_accuracy(write_def, monkeypatch):
    calls = []
    monkeypatch.setattr(recipe, "train", stub_train(calls))
    defn = load_search(write_def(constraints={"max_params": 30_000}, trials=6))
    study = run_search(defn, quiet=True).study
    rejected = [(t, r) for t, r in candidates(study) if not r.feasible]
    feasible = [(t, r) for t, r in candidates(study) if r.feasible]
    assert rejected and feasible  # width 0.5 fits under 30k params, 1.0 does not
    assert calls.count("base") == 1
    assert len(calls) - 1 == len({r.spec_hash for _, r in feasible})  # one training per network
    for t, r in rejected:
        assert r.params > 30_000 and t.state == COMPLETE
        assert t.values == [-math.inf]  # the worst, not a made-up 0.0 that plots would draw
        assert r.status == "rejected" and "max_params" in t.user_attrs["reason"]
        assert r.accuracy is None and r.latency_ms is None and not r.history  # not built
        # the samplers see the constraint (Optuna: > 0 is violated), so does the dashboard
        assert t.constraints["max_params"] == pytest.approx(r.params / 30_000 - 1)
        assert t.system_attrs["constraints"] == list(r.constraints.values())
    for t, _ in feasible:
        assert t.constraints["max_params"] <= 0
    assert study.metric_names == ["accuracy"]


def test_everything_infeasible_trains_only_the_base(write_def, monkeypatch):
    calls = []
    monkeypatch.setattr(recipe, "train", stub_train(calls))
    defn = load_search(write_def(constraints={"max_flops": 1000}, trials=3))
    study = run_search(defn, quiet=True).study
    assert len(candidates(study)) == 3 and calls == ["base"]
    assert not any(r.feasible for _, r in candidates(study))
    assert best_trial(study) is None


def test_latency_limit_is_checked_after_building_before_training(write_def, monkeypatch):
    calls = []
    monkeypatch.setattr(recipe, "train", stub_train(calls))
    defn = load_search(write_def(constraints={"max_latency_ms": 1e-6}, trials=2))
    study = run_search(defn, quiet=True).study
    assert calls == ["base"]
    for t, r in candidates(study):
        assert r.latency_ms > 0 and not r.feasible and t.constraints["max_latency_ms"] > 0


@pytest.mark.parametrize("limit", [None, 1000])
def test_two_knob_settings_one_network_one_trial(write_def, monkeypatch, limit):
    """Width 1.25 at resolution 1.00 and at 1.05 build the same 12 px network: one trial,
    trained (or rejected) once; the second proposal is a repeat, told to the sampler as PRUNED
    with no value, and the grid, exhausted, stops the search at one trial."""
    calls = []
    monkeypatch.setattr(recipe, "train", stub_train(calls, lambda n: 0.5 + 0.1 * n))
    space = {
        "width": {"low": 1.25, "high": 1.25},
        "resolution": {"low": 1.0, "high": 1.05, "step": 0.05},
        "kernels": None,
    }
    defn = load_search(
        write_def(space=space, sampler="grid", constraints={"max_flops": limit}, trials=2)
    )
    result = run_search(defn, quiet=True)
    study = result.study
    ((first, r1),) = candidates(study)
    ((again, r2),) = repeats(study)
    assert r1.size == r2.size == 12 and r2.spec_hash == r1.spec_hash
    assert r2.status == "duplicate" and r2.same_as == first.number
    assert again.state == PRUNED and again.values is None and again.user_attrs[REPEAT_KEY] == 1
    assert {first.params["resolution"], again.params["resolution"]} == {1.0, 1.05}
    assert r1.feasible == (limit is None)
    assert calls == (["base", f"trial {first.number}"] if limit is None else ["base"])
    assert results.Tally.of(study).finished == 2 and results.Tally.of(study).repeats == 1
    assert "no more than the 1 distinct networks trained" in result.notes[0]
    assert "1 proposal rebuilt an earlier network" in counts(study)


def test_a_candidate_that_rebuilds_the_base_is_a_repeat_of_trial_0(write_def, monkeypatch):
    """A grid with width 1.0 rebuilds the unscaled base: not a trial (trial 0 is that network);
    it still resolves to the base's spec and weights when named."""
    from archspec.search.resolve import network_number, trial_spec
    from archspec.sources import load_source

    calls = []
    monkeypatch.setattr(recipe, "train", stub_train(calls, lambda n: 0.9 if n == 1 else 0.5))
    space = {"width": {"low": 0.5, "high": 1.0, "step": 0.5}, "kernels": None}
    defn = load_search(write_def(space=space, sampler="grid", trials=2, evaluation={"seeds": 0}))
    result = run_search(defn, quiet=True)
    study = result.study
    ((again, record),) = repeats(study)
    assert record.same_as == 0 and again.state == PRUNED
    assert [t.number for t in results.ranked_trials(study)] == [
        c.number for c, _ in candidates(study)
    ]
    assert calls == ["base", f"trial {candidates(study)[0][0].number}"]
    assert network_number(study, again.number) == 0
    spec, header = trial_spec(study, again.number)
    assert f"trial {again.number} (the same network as trial 0)" in header
    assert archspec.analyze(spec).params == read_trial(study.trials[0]).params
    base_weights = load_source("tiny", trial=0).model.state_dict()
    exported = load_source("tiny", trial=again.number).model.state_dict()
    assert all(torch.equal(v, base_weights[k]) for k, v in exported.items())


def test_trials_are_distinct_networks_and_a_small_space_stops_when_exhausted(
    write_def, monkeypatch
):
    calls = []
    monkeypatch.setattr(recipe, "train", stub_train(calls))
    defn = load_search(write_def(space={"width": None, "kernels": {"stage3": [3, 5]}}, trials=5))
    result = run_search(defn, quiet=True)
    study = result.study
    # kernel 3 is the base's own network: two distinct networks, the base and kernel 5
    assert calls[0] == "base" and len(calls) == 2
    assert len(candidates(study)) == 1 and results.Tally.of(study).finished == 2
    for t, r in repeats(study):
        original = read_trial(study.trials[r.same_as])
        assert r.spec_hash == original.spec_hash and t.state == PRUNED and t.values is None
    assert "no more than the 1 distinct networks trained" in result.notes[0]
    assert len(results.ranked_trials(study)) == 1


def test_out_of_memory_is_an_infeasible_candidate(write_def, monkeypatch):
    calls = []
    stub = stub_train(calls)

    def oom(model, data, cfg, *, desc="", **kwargs):
        if desc == "base":
            return stub(model, data, cfg, desc=desc, **kwargs)
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(recipe, "train", oom)
    study = run_search(load_search(write_def(trials=2)), quiet=True).study
    for t, r in candidates(study):
        assert t.state == COMPLETE and not r.feasible and t.constraints["valid"] == 1
        assert r.reason.startswith("out of memory")
