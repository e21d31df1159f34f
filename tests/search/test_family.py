"""Compound scaling end to end: the search on the built network and the family within its FLOPs
band."""

import optuna
import pytest

import archspec
from archspec.search import best_trial, load_search, recipe, run_search
from archspec.search.study.records import read_family, read_study
from tests.search.stubs import COMPOUND, candidates, stub_train

COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


def test_compound_search_on_the_built_network_and_family_within_the_band(write_def, monkeypatch):
    monkeypatch.setattr(recipe, "train", stub_train([], lambda n: 0.9))
    defn = load_search(write_def("compound", **COMPOUND))
    tolerance = defn.compound.tolerance
    assert tolerance == 0.05  # the default band: +-5% of the FLOPs target
    result = run_search(defn, quiet=True)
    study = result.study
    for t, r in candidates(study):
        assert r.knobs["width"] == t.params["beta"] and r.knobs["resolution"] == t.params["gamma"]
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
