"""Compound scaling's step 2 (EfficientNet, Tan & Le 2019, sec. 3.3): the family phi = 1..K
scaled from the best trial's alpha, beta, gamma, stored on the study."""

from __future__ import annotations

from typing import Any

import optuna

from archspec.errors import ArchspecError
from archspec.search.results import best_trial
from archspec.search.space import Candidate
from archspec.search.trial import TrialRunner


def run_family(study: optuna.Study, runner: TrialRunner) -> list[dict[str, Any]]:
    """EfficientNet step 2: the best alpha, beta, gamma raised to phi = 1..K, each trained with
    the same recipe. Stored on the study; recomputed only when the best trial changes."""
    best = best_trial(study)
    if best is None:
        return []
    phis = runner.defn.compound.phi
    stored = study.user_attrs.get("family")
    if stored and stored.get("trial") == best.number and len(stored["members"]) == phis:
        return stored["members"]
    base = Candidate.from_attrs(best.user_attrs["candidate"])
    members = [_member(1, base, best.user_attrs, best.number)]
    for phi in range(2, phis + 1):
        candidate = base.power(phi)
        try:
            metrics = runner.measure(candidate, desc=f"phi={phi}").to_attrs()
        except ArchspecError as exc:
            metrics = {"error": str(exc).splitlines()[0]}
        members.append(_member(phi, candidate, metrics, None))
    study.set_user_attr("family", {"trial": best.number, "members": members})
    return members


def _member(
    phi: int, candidate: Candidate, metrics: dict[str, Any], trial: int | None
) -> dict[str, Any]:
    keys = ("accuracy", "params", "flops", "latency_ms", "size", "error")
    return {
        "phi": phi,
        "trial": trial,
        "candidate": candidate.to_attrs(),
        **{k: metrics[k] for k in keys if k in metrics},
    }
