"""What a stored study holds: the base trial, the trained feasible candidates, the best one,
the distinct networks ranked, the Pareto front, the trials counted towards the target and
why the others never finished."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from archspec.search.study.records import REPEAT_KEY, TrialRecord, read_trial


def records(study: optuna.Study) -> list[tuple[FrozenTrial, TrialRecord]]:
    """Every finished trial that has an archspec record, in trial order."""
    out = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        record = read_trial(trial)
        if record is not None:
            out.append((trial, record))
    return out


def network_trial(study: optuna.Study, trial: FrozenTrial) -> FrozenTrial:
    """The trial that built and trained `trial`'s network, where its spec and weights are
    kept: `trial` itself, or for a repeat of an earlier network the trial it repeats (which
    may be the base, trial 0, when a candidate rebuilds the unscaled network)."""
    record = read_trial(trial)
    if record is None or record.same_as is None:
        return trial
    return study.get_trials(deepcopy=False)[record.same_as]


def base_trial(study: optuna.Study) -> tuple[FrozenTrial, TrialRecord] | None:
    for trial, record in records(study):
        if record.role == "base":
            return trial, record
    return None


def feasible_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trained candidates within every constraint (repeats of a network included)."""
    return [
        t
        for t, r in records(study)
        if t.state == TrialState.COMPLETE and r.role == "candidate" and r.feasible and r.trained
    ]


def _sign(study: optuna.Study) -> int:
    return 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best feasible trial by the first objective (None when there is none); on a tie the
    earlier trial, so a network's first trial rather than its repeats."""
    trials = feasible_trials(study)
    if not trials:
        return None
    sign = _sign(study)
    return max(trials, key=lambda t: (sign * t.values[0], -t.number))


def ranked_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Feasible trials of distinct networks, best first by the first objective."""
    sign = _sign(study)
    first: dict[str | None, FrozenTrial] = {}
    for trial in feasible_trials(study):  # in trial order: a network's first candidate trial
        first.setdefault(read_trial(trial).spec_hash, trial)
    return sorted(first.values(), key=lambda t: (-sign * t.values[0], t.number))


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible Pareto front of distinct networks (for one objective: the best trial)."""
    if len(study.directions) == 1:
        best = best_trial(study)
        return [best] if best else []
    keep = {t.number for t in ranked_trials(study)}
    return sorted((t for t in study.best_trials if t.number in keep), key=lambda t: t.number)


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts towards the target


# A trial holds a place in the target while it is finished, running or queued.
HOLDING = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)


def is_repeat(trial: FrozenTrial) -> bool:
    """A proposal that rebuilt an earlier trial's network: told to the sampler, not a trial."""
    return REPEAT_KEY in trial.user_attrs


@dataclass(frozen=True)
class Tally:
    """The study's trials by what they mean for the target (repeats count for nothing)."""

    finished: int  # COMPLETE or PRUNED
    running: int
    waiting: int  # queued: retries of failed trials, enqueued trials
    repeats: int = 0  # proposals that rebuilt an earlier network

    @classmethod
    def of(cls, study: optuna.Study) -> Tally:
        trials = study.get_trials(deepcopy=False)
        states = [t.state for t in trials if not is_repeat(t)]
        return cls(
            sum(s in FINISHED for s in states),
            states.count(TrialState.RUNNING),
            states.count(TrialState.WAITING),
            sum(is_repeat(t) for t in trials),
        )


def unfinished(study: optuna.Study) -> dict[int, str]:
    """Trial number -> why it never finished, for every trial that is not COMPLETE or PRUNED
    (what `report` and `export` say about it)."""
    trials = study.get_trials(deepcopy=False)
    retried_as = {
        t.system_attrs["retry_history"][-1]: t.number
        for t in trials
        if t.system_attrs.get("retry_history")
    }
    notes = {}
    for t in trials:
        if t.state in FINISHED:
            continue
        if t.state == TrialState.RUNNING:
            note = (
                "running (if its worker died, it is failed and retried once its heartbeat is stale)"
            )
        elif t.state == TrialState.WAITING:
            note = "queued: the next worker runs it"
        else:
            reason = t.user_attrs.get("fail_reason")
            if not reason:
                reason = "its worker died" if t.number in retried_as else "failed"
            note = f"failed: {reason}"
            if t.number in retried_as:
                note += f"; retried as trial {retried_as[t.number]}"
        notes[t.number] = note
    return notes
