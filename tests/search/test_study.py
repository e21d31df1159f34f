"""Studies end to end: trials, constraints before training, resume, export, samplers, pruners."""

import math
import time

import optuna
import pytest
import torch

import archspec
from archspec.errors import SearchError
from archspec.search import best_trial, export_trial, load_search, load_study, results, run_search
from archspec.search import trial as trial_module
from archspec.search.objectives import Metrics, reward
from archspec.search.samplers import SAMPLERS
from archspec.search.train import TrainResult
from archspec.spec import load_spec


def test_end_to_end_three_tiny_trials_and_export(write_def, tmp_path, monkeypatch):
    built = []
    real_build = trial_module.build

    def recording_build(spec, **kwargs):
        model = real_build(spec, **kwargs)
        built.append({k: tuple(v.shape) for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(trial_module, "build", recording_build)
    start = time.perf_counter()
    result = run_search(load_search(write_def()), quiet=True)
    assert time.perf_counter() - start < 60
    trials = result.study.trials
    assert len(trials) == 3 and result.added == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert all(t.user_attrs["feasible"] and len(t.user_attrs["history"]) == 1 for t in trials)
    best = best_trial(result.study)
    assert best.values[0] == max(t.values[0] for t in trials)
    assert 0.3 < best.user_attrs["accuracy"] <= 1.0
    assert best.user_attrs["latency_ms"] > 0

    path, _ = export_trial(result.study, tmp_path / "best.yaml")
    rebuilt = archspec.build(load_spec(path))  # from the file alone
    assert sum(p.numel() for p in rebuilt.parameters()) == best.user_attrs["params"]
    shapes = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    assert shapes in built  # the very architecture that was trained
    assert load_spec(path).input.size == best.user_attrs["size"]
    assert "trial" in path.read_text().splitlines()[0]


def _stub_train(calls, accuracy=lambda n: 0.5):
    """A stand-in for train(): records each call, reports every epoch, trains nothing."""

    def train(model, data, cfg, *, device, seed, report=None, progress=False, desc=""):
        calls.append(desc)
        acc = accuracy(len(calls))
        for epoch in range(cfg.epochs):
            if report is not None:
                report(epoch, acc)
        return TrainResult(acc, [acc] * cfg.epochs)

    return train


def test_constraints_reject_before_any_training(write_def, monkeypatch):
    calls = []
    monkeypatch.setattr(trial_module, "train", _stub_train(calls))
    defn = load_search(write_def(constraints={"max_params": 30_000}, trials=6))
    study = run_search(defn, quiet=True).study
    infeasible = [t for t in study.trials if not t.user_attrs["feasible"]]
    feasible = [t for t in study.trials if t.user_attrs["feasible"]]
    assert infeasible and feasible  # width 0.5 fits under 30k params, 1.0 does not
    assert len(calls) == len({str(t.user_attrs["candidate"]) for t in feasible})
    for t in infeasible:
        assert t.user_attrs["params"] > 30_000
        assert t.values == [0.0] and "history" not in t.user_attrs
        assert t.user_attrs["latency_ms"] is None  # not even built
        # the sampler sees the constraint (Optuna: > 0 is violated)
        assert t.constraints["max_params"] == pytest.approx(t.user_attrs["params"] / 30_000 - 1)
    for t in feasible:
        assert t.constraints["max_params"] <= 0


def test_everything_infeasible_trains_nothing(write_def, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("an infeasible candidate was built or trained")

    monkeypatch.setattr(trial_module, "train", forbidden)
    monkeypatch.setattr(trial_module, "build", forbidden)
    defn = load_search(write_def(constraints={"max_flops": 1000}, trials=3))
    study = run_search(defn, quiet=True).study
    assert len(study.trials) == 3
    assert not any(t.user_attrs["feasible"] for t in study.trials)
    assert best_trial(study) is None


def test_latency_limit_is_checked_after_building_before_training(write_def, monkeypatch):
    calls = []
    monkeypatch.setattr(trial_module, "train", _stub_train(calls))
    defn = load_search(write_def(constraints={"max_latency_ms": 1e-6}, trials=2))
    study = run_search(defn, quiet=True).study
    assert calls == []
    for t in study.trials:
        assert t.user_attrs["latency_ms"] > 0 and not t.user_attrs["feasible"]
        assert t.constraints["max_latency_ms"] > 0


def test_resume_adds_trials_to_the_same_study(write_def, tmp_path, monkeypatch):
    monkeypatch.setattr(trial_module, "train", _stub_train([]))
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    path = write_def(trials=2)
    first = run_search(load_search(path), storage=storage, quiet=True).study
    second = run_search(load_search(path), storage=storage, trials=1, quiet=True).study
    assert first.study_name == second.study_name
    assert len(load_study("tiny", storage).trials) == 3
    assert len(load_study(str(path), storage).trials) == 3

    changed = write_def(training={"epochs": 2})
    with pytest.raises(SearchError, match=r"different setup \(training\)"):
        run_search(load_search(changed), storage=storage, trials=1, quiet=True)
    with pytest.raises(SearchError, match=r"seed \(0 -> 5\)"):
        run_search(load_search(path), storage=storage, seed=5, trials=1, quiet=True)


def test_default_storage_is_runs_study_db(write_def, tmp_path, monkeypatch):
    monkeypatch.setattr(trial_module, "train", _stub_train([]))
    run_search(load_search(write_def(trials=1)), quiet=True)
    assert (tmp_path / "runs" / "tiny.db").exists()
    with pytest.raises(SearchError, match="no study 'other'"):
        load_study("other", f"sqlite:///{tmp_path / 'runs' / 'tiny.db'}")
    with pytest.raises(SearchError, match="no study database"):
        load_study("missing")


def test_a_repeated_candidate_is_not_trained_again(write_def, monkeypatch):
    calls = []
    monkeypatch.setattr(trial_module, "train", _stub_train(calls))
    defn = load_search(write_def(space={"width": None, "kernels": {"stage3": [3, 5]}}, trials=5))
    study = run_search(defn, quiet=True).study
    assert len(calls) == 2  # only two distinct candidates exist
    repeats = [t for t in study.trials if "same_as" in t.user_attrs]
    assert len(repeats) == 3
    for t in repeats:
        assert t.values == study.trials[t.user_attrs["same_as"]].values


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_runs(write_def, monkeypatch, sampler):
    monkeypatch.setattr(trial_module, "train", _stub_train([]))
    defn = load_search(write_def(sampler=sampler, trials=3))
    study = run_search(defn, quiet=True).study
    assert len(study.trials) == 3
    assert type(study.sampler).__name__.lower().startswith(sampler[:3])


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_pruners_stop_worse_trials_from_epoch_reports(write_def, monkeypatch, pruner):
    calls = []
    # each trained candidate is worse than the ones before: the pruner should stop them
    monkeypatch.setattr(trial_module, "train", _stub_train(calls, lambda n: 1.0 - 0.1 * n))
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
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned
    assert all(t.intermediate_values for t in pruned)


def test_free_multi_objective_pareto_front(write_def, tmp_path, monkeypatch):
    monkeypatch.setattr(trial_module, "train", _stub_train([], lambda n: 0.5 + 0.01 * n))
    defn = load_search(
        write_def(
            objectives=["accuracy", "flops"],
            sampler={"name": "nsga2", "population_size": 4},
            trials=5,
        )
    )
    study = run_search(defn, quiet=True).study
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    front = results.pareto_trials(study)
    assert front
    for t in front:  # no trial dominates a front member
        assert not any(
            o.values[0] >= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values
            for o in results.feasible_trials(study)
        )
    path, _ = export_trial(study, tmp_path / "front.yaml")
    assert path.exists()


def test_compound_search_and_family(write_def, monkeypatch):
    monkeypatch.setattr(trial_module, "train", _stub_train([], lambda n: 0.9))
    defn = load_search(
        write_def(
            "compound",
            mode="compound",
            space={
                "depth": {"low": 1.0, "high": 2.0},
                "width": {"low": 1.0, "high": 1.3, "step": 0.1},
                "resolution": {"low": 1.0, "high": 1.3, "step": 0.1},
                "kernels": None,
            },
            compound={"flops_ratio": 2.0, "tolerance": 0.3, "phi": 3},
            trials=4,
        )
    )
    result = run_search(defn, quiet=True)
    for t in result.study.trials:
        alpha, (beta, gamma) = t.user_attrs["alpha"], (t.params["beta"], t.params["gamma"])
        assert t.user_attrs["ideal_ratio"] == pytest.approx(alpha * beta**2 * gamma**2)
        ok = (
            abs(t.user_attrs["flops_ratio"] / 2 - 1) <= 0.3
            and abs(alpha * beta**2 * gamma**2 / 2 - 1) <= 0.3
        )
        assert t.user_attrs["feasible"] == ok
    best = best_trial(result.study)
    assert best is not None, "no feasible compound candidate in 4 trials"
    family = result.family
    assert [m["phi"] for m in family] == [1, 2, 3]
    assert family[0]["trial"] == best.number
    flops = [m["flops"] for m in family]
    assert flops[0] < flops[1] < flops[2]
    first = family[0]["candidate"]
    third = family[2]["candidate"]
    assert third["width"] == pytest.approx(first["width"] ** 3)
    assert third["depth"] == pytest.approx(first["depth"] ** 3)
    # stored on the study, and a family member exports like a trial
    assert result.study.user_attrs["family"]["members"] == family
    spec = family_member_spec(result.study, phi=3)
    assert archspec.analysis.analyze(spec).flops == flops[2]


def family_member_spec(study, **kwargs):
    from archspec.search import trial_spec

    return trial_spec(study, **kwargs)[0]


def test_training_is_deterministic_for_a_fair_comparison(write_def):
    from archspec.search.data import load_dataset
    from archspec.search.space import Candidate

    defn = load_search(write_def())
    dataset = load_dataset(defn.data, defn.seed)
    runner = trial_module.TrialRunner(defn, dataset, seed=defn.seed, quiet=True)
    a = runner.measure(Candidate(width=0.5))
    b = runner.measure(Candidate(width=0.5))
    assert a.accuracy == b.accuracy and a.params == b.params


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
    monkeypatch.setattr(trial_module, "train", _stub_train([], lambda n: 0.8))
    defn = load_search(
        write_def(objectives=["reward"], reward={"metric": "latency_ms", "target": 1.0}, trials=2)
    )
    study = run_search(defn, quiet=True).study
    for t in study.trials:
        expected = 0.8 * (t.user_attrs["latency_ms"] / 1.0) ** -0.07
        assert t.values[0] == pytest.approx(expected)


def test_cuda_is_used_when_present():
    from archspec.search.train import pick_device

    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu").type == "cpu"


def test_out_of_memory_is_an_infeasible_candidate(write_def, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(trial_module, "train", oom)
    study = run_search(load_search(write_def(trials=2)), quiet=True).study
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE and not t.user_attrs["feasible"]
        assert t.user_attrs["error"].startswith("out of memory") and t.constraints["valid"] == 1
