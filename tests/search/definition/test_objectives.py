"""What a trial is judged by: MnasNet's reward, alone and as a search's objective."""

import math

import optuna
import pytest

from archspec.search import load_search, recipe, run_search
from archspec.search.definition.objectives import Metrics, reward
from tests.search.stubs import candidates, stub_train

COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


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


def test_reward_objective_end_to_end(write_def, monkeypatch):
    monkeypatch.setattr(recipe, "train", stub_train([], lambda n: 0.8))
    defn = load_search(
        write_def(objectives=["reward"], reward={"metric": "latency_ms", "target": 1.0}, trials=2)
    )
    study = run_search(defn, quiet=True).study
    for t, r in candidates(study):
        expected = 0.8 * (r.latency_ms / 1.0) ** -0.07
        assert t.values[0] == pytest.approx(expected)


def load_reward(**kwargs):
    from archspec.search.definition.model import Reward

    return Reward(**kwargs)
