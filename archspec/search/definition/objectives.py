"""What a trial is judged by: its metrics, the objective values Optuna sees, the constraint
values (<= 0 is feasible, as Optuna counts) and MnasNet's reward."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from archspec.search.definition.model import Reward, SearchDef


@dataclass
class Metrics:
    """Everything measured about one candidate; None where it was never measured (a candidate
    rejected before it was built has no latency, one rejected before training no accuracy)."""

    params: int
    flops: int
    size: int
    accuracy: float | None = None
    latency_ms: float | None = None

    def to_attrs(self) -> dict[str, float | int | None]:
        return asdict(self)


def reward(cfg: Reward, metrics: Metrics) -> float:
    """ACC * (value / target) ^ w (Tan et al. 2019, MnasNet, eq. 2)."""
    value = getattr(metrics, cfg.metric)
    accuracy = metrics.accuracy or 0.0
    if value is None:
        return 0.0
    ratio = value / cfg.target
    weight = cfg.weight if ratio <= 1 or cfg.weight_above is None else cfg.weight_above
    return accuracy * ratio**weight


def values(defn: SearchDef, metrics: Metrics) -> list[float]:
    """The objective values of a trained candidate, in the definition's order."""
    out = []
    for metric in defn.metrics:
        if metric == "reward":
            assert defn.reward is not None
            out.append(reward(defn.reward, metrics))
        else:
            value = getattr(metrics, metric)
            out.append(float(value) if value is not None else math.inf)
    return out


def penalty(defn: SearchDef, metrics: Metrics) -> list[float]:
    """Objective values of a candidate that was not trained: the worst possible (-inf for a
    maximized accuracy or reward, not a made-up 0.0 that plots would draw), costs as measured
    (+inf where never measured). The samplers never compare these with trained values: they
    rank an infeasible trial by its constraint violation."""
    out = []
    for metric, direction in zip(defn.metrics, defn.directions, strict=True):
        value = None if metric in ("accuracy", "reward") else getattr(metrics, metric)
        if value is None:
            value = -math.inf if direction == "maximize" else math.inf
        out.append(float(value))
    return out


def cost_constraints(defn: SearchDef, metrics: Metrics) -> dict[str, float]:
    """Relative excess over each configured limit: value / limit - 1 (<= 0 is feasible).
    Latency reads 0 until measured: it is checked once the candidate is built."""
    limits = defn.constraints
    out: dict[str, float] = {}
    if limits.max_params is not None:
        out["max_params"] = metrics.params / limits.max_params - 1
    if limits.max_flops is not None:
        out["max_flops"] = metrics.flops / limits.max_flops - 1
    if limits.max_latency_ms is not None:
        latency = metrics.latency_ms
        out["max_latency_ms"] = 0.0 if latency is None else latency / limits.max_latency_ms - 1
    return out


def compound_constraints(defn: SearchDef, flops_ratio: float, product: float) -> dict[str, float]:
    """Compound mode, on what the network has: its analysed FLOPs ratio within `tolerance` of
    `flops_ratio`, and its effective depth * width^2 * resolution^2 within
    `product_tolerance` (<= 0 is feasible)."""
    cfg = defn.compound
    return {
        "flops_ratio": abs(flops_ratio / cfg.flops_ratio - 1) - cfg.tolerance,
        "product": abs(product / cfg.flops_ratio - 1) - cfg.product_tolerance,
    }


def feasible(constraints: dict[str, float]) -> bool:
    return all(v <= 0 for v in constraints.values())
