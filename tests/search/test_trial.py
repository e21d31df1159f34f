"""One trial: constraints on the built network before training, one training per network, the
base reused, out of memory as an infeasible candidate."""

import math

import optuna
import pytest
import torch

import archspec
from archspec.search import best_trial, load_search, recipe, run_search
from archspec.search.study import queries as results
from archspec.search.study.records import read_trial
from tests.search.stubs import candidates, stub_train

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
        if r.status == "duplicate":  # the base's own network: its outcome, still infeasible
            assert r.same_as == 0 and "same network as trial 0" in t.user_attrs["reason"]
        else:
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
    assert len(study.trials) == 4 and calls == ["base"]
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
def test_two_knob_settings_one_network_trained_once_same_feasibility(write_def, monkeypatch, limit):
    """The issue's trial 4/5 pair: width 1.25 at resolution 1.00 and at 1.05 build the same
    12 px network; it is trained (or rejected) once, both trials have its outcome."""
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
    study = run_search(defn, quiet=True).study
    (a, ra), (b, rb) = sorted(candidates(study), key=lambda tr: tr[0].params["resolution"])
    assert (a.params["resolution"], b.params["resolution"]) == (1.0, 1.05)
    assert ra.spec_hash == rb.spec_hash and ra.size == rb.size == 12
    assert ra.constraints == rb.constraints and ra.feasible == rb.feasible == (limit is None)
    first, second = sorted([(a, ra), (b, rb)], key=lambda tr: tr[0].number)
    assert second[1].status == "duplicate" and second[1].same_as == first[0].number
    assert a.values == b.values
    assert calls == (["base", f"trial {first[0].number}"] if limit is None else ["base"])


def test_a_candidate_that_rebuilds_the_base_uses_the_base_s_spec_and_weights(
    write_def, monkeypatch
):
    """A grid with width 1.0 rebuilds the unscaled base: that candidate is a repeat of trial
    0, which keeps the spec and the weights; winning with it breaks nothing downstream."""
    from archspec.search.resolve import network_number, trial_spec
    from archspec.sources import load_source

    calls = []
    monkeypatch.setattr(recipe, "train", stub_train(calls, lambda n: 0.9 if n == 1 else 0.5))
    space = {"width": {"low": 0.5, "high": 1.0, "step": 0.5}, "kernels": None}
    defn = load_search(
        write_def(
            space=space,
            sampler="grid",
            trials=2,
            evaluation={"top_k": 2, "seeds": 2, "processes": 1},
        )
    )
    result = run_search(defn, quiet=True)
    study = result.study
    (again,) = [t for t, r in candidates(study) if r.same_as == 0]
    assert best_trial(study).number == again.number
    assert network_number(study, again.number) == network_number(study, "best") == 0
    by_label = {e.label: e for e in result.evaluation.entries}
    assert by_label["rank 1"].trial == again.number
    assert by_label["rank 1"].scores == by_label["base"].scores  # one network, trained once
    assert "within the noise" in result.evaluation.verdict
    spec, header = trial_spec(study, again.number)
    assert f"trial {again.number} (the same network as trial 0)" in header
    assert archspec.analyze(spec).params == read_trial(study.trials[0]).params
    (best,) = [b for b in result.bundles if b.label == "best"]
    bundle = archspec.load_bundle(best.path)
    assert bundle.manifest.provenance.trial == again.number
    base_weights = load_source("tiny", trial=0).model.state_dict()
    for key, value in bundle.model.state_dict().items():
        assert torch.equal(value, base_weights[key])
    exported = load_source("tiny", trial=again.number).model.state_dict()
    assert all(torch.equal(v, base_weights[k]) for k, v in exported.items())


def test_a_repeated_candidate_is_not_trained_again(write_def, monkeypatch):
    calls = []
    monkeypatch.setattr(recipe, "train", stub_train(calls))
    defn = load_search(write_def(space={"width": None, "kernels": {"stage3": [3, 5]}}, trials=5))
    study = run_search(defn, quiet=True).study
    # kernel 3 is the base's own network: two distinct networks, the base and kernel 5
    assert len(calls) == 2 and calls[0] == "base"
    repeats = [(t, r) for t, r in candidates(study) if r.status == "duplicate"]
    assert len(repeats) == 4
    for _, r in repeats:
        original = read_trial(study.trials[r.same_as])
        assert r.spec_hash == original.spec_hash and r.accuracy == original.accuracy
    assert len(results.ranked_trials(study)) == 2  # each network once, the base's included


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
        assert r.reason.startswith("out of memory") or r.status == "duplicate"
