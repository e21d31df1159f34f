"""What a stored study found: its feasible trials, the best one, the Pareto front."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState


def feasible_trials(study: optuna.Study) -> list[FrozenTrial]:
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("feasible")
    ]


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best feasible trial of a single-objective study (None when there is none)."""
    trials = feasible_trials(study)
    if not trials:
        return None
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(trials, key=lambda t: (sign * t.values[0], -t.number))


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible Pareto front (for one objective: the best trial)."""
    if len(study.directions) == 1:
        best = best_trial(study)
        return [best] if best else []
    return sorted(study.best_trials, key=lambda t: t.number)
