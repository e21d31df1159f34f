"""Compound scaling end to end: the search on the built network and the family within its FLOPs
band."""

import optuna
import pytest

import archspec
from archspec.search import best_trial, load_search, recipe, run_search
from archspec.search.definition.space import reference_spec
from archspec.search.study.records import read_family, read_study
from archspec.search.trial import band_of
from tests.search.stubs import COMPOUND, candidates, stub_train

COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


def test_compound_search_on_the_built_network_and_family_within_the_band(write_def, monkeypatch):
    monkeypatch.setattr(recipe, "train", stub_train([], lambda n: 0.9))
    defn = load_search(write_def("compound", **COMPOUND))
    tolerance = defn.compound.tolerance
    assert tolerance == 0.05  # the default band: +-5% of the FLOPs target
    result = run_search(defn, quiet=True)
    study = result.study
    networks = {n.label: n for n in band_of(defn, reference_spec(defn.base_spec, 10))}
    assert len(candidates(study)) == 4  # 4 distinct networks of the band
    assert len({r.spec_hash for _, r in candidates(study)}) == 4
    for t, r in candidates(study):
        # the sampler chose a network of the band, listed up front: what was built is it
        chosen = networks[t.params["network"]]
        assert r.knobs["network"] == chosen.label and r.effective == chosen.effective
        eff = r.effective
        assert r.constraints["flops_ratio"] == pytest.approx(abs(eff.flops_ratio / 2 - 1) - 0.05)
        assert r.constraints["product"] == pytest.approx(abs(eff.product / 2 - 1) - 0.25)
        assert r.feasible == (
            abs(eff.flops_ratio / 2 - 1) <= 0.05 and abs(eff.product / 2 - 1) <= 0.25
        )
        assert r.flops == pytest.approx(eff.flops_ratio * read_study(study).base_flops)
    best = best_trial(study)
    assert best is not None, "no feasible compound candidate in 4 trials"
    family = result.family
    assert family == read_family(study)  # stored on the study
    assert [m.phi for m in family.members] == [1, 2, 3] and family.members[0].trial == best.number
    for m in family.members:  # target and achieved for every member, achieved within the band
        assert m.target_flops_ratio == 2.0**m.phi
        assert abs(m.effective.flops_ratio / m.target_flops_ratio - 1) <= tolerance and m.in_band
    assert family.members[0].flops < family.members[1].flops < family.members[2].flops
    # a family member exports like a trial, and rebuilds the measured network
    spec = archspec.search.trial_spec(study, phi=3)[0]
    assert archspec.analysis.analyze(spec).flops == family.members[2].flops


def test_a_band_with_fewer_networks_than_trials_runs_each_once_and_says_so(write_def, monkeypatch):
    calls = []
    monkeypatch.setattr(recipe, "train", stub_train(calls, lambda n: 0.5 + 0.01 * n))
    narrow = {**COMPOUND["space"], "width": {"low": 1.0, "high": 1.0},
              "resolution": {"low": 1.0, "high": 1.0}}  # fmt: skip
    defn = load_search(write_def("narrow", **{**COMPOUND, "space": narrow, "trials": 50},
                                 evaluation={"seeds": 0}))  # fmt: skip
    networks = band_of(defn, reference_spec(defn.base_spec, 10))
    assert 0 < len(networks) < 50  # depth alone: a few networks in the band
    result = run_search(defn, quiet=True)
    assert result.notes[0].startswith(
        f"the FLOPs band holds {len(networks)} distinct networks, fewer than the 50 trials"
    )
    trained = {r.spec_hash for _, r in candidates(result.study)}
    assert len(candidates(result.study)) == len(trained) == len(networks)
    assert len(calls) == 1 + len(networks) + 2  # the base, each network once, phi = 2, 3
