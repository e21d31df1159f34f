"""Studies end to end: the base trial, constraints on the built network before training, one
training per network, resume, export and exact reproduction, samplers, pruners, the compound
family within its FLOPs band, the seeds re-evaluation, the stored records."""

import math
import time

import optuna
import pytest
import torch

import archspec
from archspec.errors import SearchError
from archspec.search import (
    best_trial,
    export_trial,
    load_search,
    load_study,
    recipe,
    results,
    run_search,
)
from archspec.search.objectives import Metrics, reward
from archspec.search.record import KEY, read_evaluation, read_family, read_study, read_trial
from archspec.search.samplers import SAMPLERS
from archspec.search.train import TrainResult
from archspec.spec import load_spec

COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


def candidates(study):
    """(trial, record) of every trial but the base."""
    return [(t, read_trial(t)) for t in study.trials if read_trial(t).role == "candidate"]


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
    assert len(study.trials) == 3 and result.added == 3  # the base, then 2 candidates

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
    from archspec.search.data import load_dataset

    again = recipe.Recipe(defn, load_dataset(defn.data, defn.seed), quiet=True)
    assert again.score(spec, defn.seed).val == record.accuracy


def _stub_train(calls, accuracy=lambda n: 0.5):
    """A stand-in for train(): records each call, reports every epoch, trains nothing."""

    def train(model, data, cfg, *, device, seed, report=None, progress=False, desc="", **kw):
        calls.append(desc)
        acc = accuracy(len(calls))
        for epoch in range(cfg.epochs):
            if report is not None:
                report(epoch, acc)
        return TrainResult(acc, [acc] * cfg.epochs)

    return train


def test_constraints_reject_before_any_training_without_a_fake_accuracy(write_def, monkeypatch):
    calls = []
    monkeypatch.setattr(recipe, "train", _stub_train(calls))
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
    monkeypatch.setattr(recipe, "train", _stub_train(calls))
    defn = load_search(write_def(constraints={"max_flops": 1000}, trials=3))
    study = run_search(defn, quiet=True).study
    assert len(study.trials) == 4 and calls == ["base"]
    assert not any(r.feasible for _, r in candidates(study))
    assert best_trial(study) is None


def test_latency_limit_is_checked_after_building_before_training(write_def, monkeypatch):
    calls = []
    monkeypatch.setattr(recipe, "train", _stub_train(calls))
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
    monkeypatch.setattr(recipe, "train", _stub_train(calls, lambda n: 0.5 + 0.1 * n))
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
    from archspec.export.source import load_source
    from archspec.search.pick import network_number, trial_spec

    calls = []
    monkeypatch.setattr(recipe, "train", _stub_train(calls, lambda n: 0.9 if n == 1 else 0.5))
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


def test_resume_runs_only_the_missing_trials(write_def, tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "train", _stub_train([]))
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


def test_foreign_and_old_studies_are_refused(write_def, tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "train", _stub_train([]))
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    foreign = optuna.create_study(study_name="tiny", storage=storage)
    foreign.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(SearchError, match="was not created by archspec search"):
        run_search(load_search(write_def(trials=1)), storage=storage, quiet=True)
    with pytest.raises(SearchError, match="was not created by archspec search"):
        load_study("tiny", storage)

    run_search(load_search(write_def("new", trials=1)), storage=storage, quiet=True)
    study = load_study("new", storage)
    old = dict(study.user_attrs[KEY])
    old.pop("schema_version")
    study.set_user_attr(KEY, old)
    with pytest.raises(SearchError, match=r"different archspec \(record schema 0"):
        load_study("new", storage)


def test_default_storage_is_runs_study_db(write_def, tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "train", _stub_train([]))
    run_search(load_search(write_def(trials=1)), quiet=True)
    assert (tmp_path / "runs" / "tiny.db").exists()
    with pytest.raises(SearchError, match="no study 'other'"):
        load_study("other", f"sqlite:///{tmp_path / 'runs' / 'tiny.db'}")
    with pytest.raises(SearchError, match="no study database"):
        load_study("missing")


def test_a_repeated_candidate_is_not_trained_again(write_def, monkeypatch):
    calls = []
    monkeypatch.setattr(recipe, "train", _stub_train(calls))
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


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_runs(write_def, monkeypatch, sampler):
    monkeypatch.setattr(recipe, "train", _stub_train([]))
    defn = load_search(write_def(sampler=sampler, trials=3))
    study = run_search(defn, quiet=True).study
    assert len(study.trials) == 4
    assert type(study.sampler).__name__.lower().startswith(sampler[:3])


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_pruners_stop_worse_trials_from_epoch_reports(write_def, monkeypatch, pruner):
    calls = []
    # each trained candidate is worse than the ones before: the pruner should stop them
    monkeypatch.setattr(recipe, "train", _stub_train(calls, lambda n: 1.0 - 0.1 * n))
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
    assert all(t.intermediate_values and r.status in ("pruned", "duplicate") for t, r in pruned)


def test_free_multi_objective_pareto_front(write_def, tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "train", _stub_train([], lambda n: 0.5 + 0.01 * n))
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


COMPOUND = {
    "mode": "compound",
    "space": {
        "depth": {"low": 1.0, "high": 2.0},
        "width": {"low": 1.0, "high": 1.3, "step": 0.1},
        "resolution": {"low": 1.0, "high": 1.3, "step": 0.1},
        "kernels": None,
    },
    "compound": {"flops_ratio": 2.0, "phi": 3},
    "trials": 4,
}


def test_compound_search_on_the_built_network_and_family_within_the_band(write_def, monkeypatch):
    monkeypatch.setattr(recipe, "train", _stub_train([], lambda n: 0.9))
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


def test_re_evaluation_is_stored_and_reported_without_retraining(write_def, monkeypatch):
    from typer.testing import CliRunner

    import archspec.cli.search  # noqa: F401 - registers the commands
    from archspec.cli import app

    calls = []
    monkeypatch.setattr(recipe, "train", _stub_train(calls, lambda n: 0.5 + 0.01 * (n % 7)))
    cheaper = {**COMPOUND, "compound": {"flops_ratio": 2.0, "phi": 2}, "trials": 3}
    defn = load_search(
        write_def("compound", **cheaper, evaluation={"top_k": 2, "seeds": 2, "processes": 1})
    )
    result = run_search(defn, quiet=True)
    evaluation = result.evaluation
    assert evaluation == read_evaluation(result.study) and evaluation.seeds == [1, 2]
    labels = [e.label for e in evaluation.entries]
    assert labels[:2] == ["base", "rank 1"] and labels[-1] == "phi=2"
    assert all(len(e.scores.val) == len(e.scores.test) == 2 for e in evaluation.entries)
    assert "the winner" in evaluation.verdict and "the base" in evaluation.verdict
    reeval = [c for c in calls if " seed " in c]
    assert len(reeval) == 2 * len(labels)

    def forbidden(*args, **kwargs):
        raise AssertionError("report retrained something")

    monkeypatch.setattr(recipe, "train", forbidden)
    out = CliRunner().invoke(app, ["report", "compound", "--json"])
    assert out.exit_code == 0, out.output
    import json

    doc = json.loads(out.output)
    entries = {e.label: e for e in evaluation.entries}
    for key, label in (("base", "base"), ("winner", "rank 1")):
        scores = entries[label].scores
        assert doc[key]["number"] == entries[label].trial
        assert doc[key]["seeds"] == [1, 2]
        assert doc[key]["val_accuracy_mean"] == pytest.approx(sum(scores.val) / 2)
        assert doc[key]["test_accuracy_mean"] == pytest.approx(sum(scores.test) / 2)
        assert {"params", "flops", "val_accuracy_std", "test_accuracy_std"} <= set(doc[key])
    assert doc["base"]["number"] == 0
    assert [m["phi"] for m in doc["family"]] == [1, 2]
    for m in doc["family"]:
        assert m["target_flops_ratio"] == 2.0 ** m["phi"]
        assert {"params", "flops", "flops_ratio", "test_accuracy_mean", "seeds"} <= set(m)
    assert [t["number"] for t in doc["trials"]] == list(range(len(result.study.trials)))
    assert set(doc["trials"][0]) >= {"number", "state", "trained", "params", "flops", "accuracy"}


def test_training_is_deterministic_for_a_fair_comparison(write_def):
    from archspec.search.data import load_dataset
    from archspec.search.space import Candidate

    defn = load_search(write_def())
    runs = recipe.Recipe(defn, load_dataset(defn.data, defn.seed), quiet=True)
    spec = Candidate(width=0.5).spec(defn.base_spec, 10)
    assert runs.score(spec, 0) == runs.score(spec, 0)


def test_mnasnet_reward():
    metrics = Metrics(params=1, flops=1, size=8, accuracy=0.9, latency_ms=10.0)
    cfg = load_reward(target=5.0, weight=-0.07)
    assert reward(cfg, metrics) == pytest.approx(0.9 * 2.0**-0.07)
    hard = load_reward(target=20.0, weight=0.0, weight_above=-1.0)
    assert reward(hard, metrics) == pytest.approx(0.9)  # under the target: no penalty
    assert reward(load_reward(target=5.0, weight=0.0, weight_above=-1.0), metrics) == (
        pytest.approx(0.45)
    )
    assert not math.isnan(reward(cfg, Metrics(1, 1, 8)))


def load_reward(**kwargs):
    from archspec.search.definition import Reward

    return Reward(**kwargs)


def test_reward_objective_end_to_end(write_def, monkeypatch):
    monkeypatch.setattr(recipe, "train", _stub_train([], lambda n: 0.8))
    defn = load_search(
        write_def(objectives=["reward"], reward={"metric": "latency_ms", "target": 1.0}, trials=2)
    )
    study = run_search(defn, quiet=True).study
    for t, r in candidates(study):
        expected = 0.8 * (r.latency_ms / 1.0) ** -0.07
        assert t.values[0] == pytest.approx(expected)


def test_cuda_is_used_when_present():
    from archspec.search.train import pick_device

    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu").type == "cpu"


def test_out_of_memory_is_an_infeasible_candidate(write_def, monkeypatch):
    calls = []
    stub = _stub_train(calls)

    def oom(model, data, cfg, *, desc="", **kwargs):
        if desc == "base":
            return stub(model, data, cfg, desc=desc, **kwargs)
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(recipe, "train", oom)
    study = run_search(load_search(write_def(trials=2)), quiet=True).study
    for t, r in candidates(study):
        assert t.state == COMPLETE and not r.feasible and t.constraints["valid"] == 1
        assert r.reason.startswith("out of memory") or r.status == "duplicate"


def test_intervals_stay_within_what_an_accuracy_can_be():
    from archspec.search.record import Scores

    low, high = Scores.interval([0.99, 1.0])  # two seeds: the t interval runs past 1
    assert 0.0 <= low < 0.99 and high == 1.0
    mean, _, half = Scores.summary([0.99, 1.0])
    assert mean + half > 1.0  # the comparison still uses the unclipped interval
    assert Scores.interval([0.0, 0.02])[0] == 0.0


def test_a_second_study_of_the_same_name_cannot_take_over_its_files(
    write_def, tmp_path, monkeypatch
):
    """runs/<study>/ holds one study's weights and bundles: a study of the same name in another
    storage is refused before it trains, and the first one's files stay as they were."""
    monkeypatch.setattr(recipe, "train", _stub_train([]))
    defn = load_search(write_def(trials=1))
    run_search(defn, quiet=True)
    weights = tmp_path / "runs" / "tiny" / "weights" / "trial-0.safetensors"
    before = weights.read_bytes()
    with pytest.raises(SearchError, match=r"holds the files of another study named 'tiny'"):
        run_search(defn, storage=str(tmp_path / "other.log"), quiet=True)
    assert weights.read_bytes() == before
    run_search(defn, trials=2, quiet=True)  # the owner itself resumes


def test_asking_a_finished_study_for_a_seeds_re_evaluation_runs_it(write_def, monkeypatch):
    monkeypatch.setattr(recipe, "train", _stub_train([]))
    run_search(load_search(write_def(trials=2)), quiet=True)
    again = load_search(write_def(trials=2, evaluation={"seeds": 2, "top_k": 1, "processes": 1}))
    result = run_search(again, quiet=True)
    assert result.added == 0  # no trial ran again
    assert result.evaluation is not None and result.evaluation.seeds == [1, 2]
    assert read_evaluation(result.study) == result.evaluation
