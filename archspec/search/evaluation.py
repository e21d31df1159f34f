"""The final, noise-aware re-evaluation: the winner and the runners-up (the `top_k` best
distinct networks), the base and the compound family, each retrained with R fresh seeds
(not the selection seed) and scored on validation and on the held-out test split, which
nothing else reads. Stored on the study, so `archspec report` shows it without retraining;
entries whose network and seeds are unchanged are reused on a resumed study."""

from __future__ import annotations

import optuna

from archspec.analysis import analyze
from archspec.search.study.queries import (
    base_trial,
    network_trial,
    pareto_trials,
    ranked_trials,
    records,
)
from archspec.search.study.records import (
    EVALUATION_KEY,
    Evaluated,
    EvaluationRecord,
    FamilyRecord,
    Scores,
    read_evaluation,
    spec_hash,
    trial_spec_text,
    write_study_record,
)
from archspec.search.trial import TrialRunner
from archspec.search.workers.pool import Job, score_all
from archspec.spec import load_spec


def contenders(study: optuna.Study, top_k: int) -> list[optuna.trial.FrozenTrial]:
    """The winner first, then the runners-up: by the objective for one objective; the Pareto
    front ordered by the first objective for several."""
    ranked = ranked_trials(study)
    if len(study.directions) > 1:
        front = {t.number for t in pareto_trials(study)}
        ranked = [t for t in ranked if t.number in front]
    return ranked[:top_k]


def run_evaluation(
    study: optuna.Study, runner: TrialRunner, family: FamilyRecord | None
) -> EvaluationRecord | None:
    cfg = runner.defn.evaluation
    top = contenders(study, cfg.top_k)
    base = base_trial(study)
    if cfg.seeds == 0 or not top or base is None:
        return None
    seeds = [runner.seed + 1 + i for i in range(cfg.seeds)]
    wanted: list[tuple[str, int | None, int | None, str]] = [
        ("base", base[0].number, None, trial_spec_text(base[0]))
    ]
    wanted += [
        (f"rank {i + 1}", t.number, None, trial_spec_text(network_trial(study, t)))
        for i, t in enumerate(top)
    ]
    for member in family.members[1:] if family else []:
        if member.spec is not None:
            wanted.append((f"phi={member.phi}", None, member.phi, member.spec))
    stored = read_evaluation(study)
    done = (  # by the stored YAML's hash: the same as the trial's record
        {e.spec_hash: e.scores for e in stored.entries} if stored and stored.seeds == seeds else {}
    )
    costs = {text: analyze(load_spec(text)) for _, _, _, text in wanted}
    missing: dict[str, tuple[str, str]] = {}
    for label, _, _, text in wanted:
        if spec_hash(text) not in done:
            missing.setdefault(spec_hash(text), (label, text))
    jobs = [
        Job(text, s, desc=f"{label} seed {s}", cost=costs[text].flops)
        for label, text in missing.values()
        for s in seeds
    ]
    scored = iter(
        score_all(
            runner.recipe,
            jobs,
            processes=cfg.processes,
            quiet=runner.quiet,
            seconds_each=_trial_seconds(study),
        )
    )
    for digest in missing:  # a network two entries share (e.g. rank 1 and phi=1) trains once
        results = [next(scored) for _ in seeds]
        done[digest] = Scores(
            seeds=seeds, val=[r.val for r in results], test=[r.test for r in results]
        )
    entries = [
        Evaluated(
            label=label,
            trial=trial,
            phi=phi,
            params=costs[text].params,
            flops=costs[text].flops,
            spec_hash=spec_hash(text),
            scores=done[spec_hash(text)],
        )
        for label, trial, phi, text in wanted
    ]
    record = EvaluationRecord(
        seeds=seeds, winner=top[0].number, entries=entries, verdict=verdict(entries)
    )
    write_study_record(study, EVALUATION_KEY, record)
    return record


def _trial_seconds(study: optuna.Study) -> float | None:
    """The median training time of the trials that trained, None before any."""
    import statistics

    seconds = [r.train_s for _, r in records(study) if r.status == "trained" and r.train_s]
    return statistics.median(seconds) if seconds else None


def _compare(a: Evaluated, b: Evaluated, what: str) -> str:
    mean_a, _, half_a = Scores.summary(a.scores.test)
    mean_b, _, half_b = Scores.summary(b.scores.test)
    diff = 100 * (mean_a - mean_b)
    why = Scores.unjudged(a.scores.test) or Scores.unjudged(b.scores.test)
    if why is not None:
        return f"{diff:+.2f} points over {what} ({100 * mean_b:.2f}), not judged ({why})"
    low_a, high_b = mean_a - half_a, mean_b + half_b
    high_a, low_b = mean_a + half_a, mean_b - half_b
    if low_a > high_b:
        judged = "beyond the noise"
    elif high_a < low_b:
        judged = "worse, beyond the noise"
    else:
        judged = "within the noise"
    return (
        f"{diff:+.2f} points over {what} ({100 * mean_b:.2f}), {judged} (95% intervals "
        f"{_percent(Scores.interval(a.scores.test))} and "
        f"{_percent(Scores.interval(b.scores.test))})"
    )


def _percent(interval: tuple[float, float]) -> str:
    return f"[{100 * interval[0]:.2f}, {100 * interval[1]:.2f}]"


def verdict(entries: list[Evaluated]) -> str:
    """In words: does the winner beat the base and the runner-up by more than seed noise, on
    the test split?"""
    by_label = {e.label: e for e in entries}
    winner, base = by_label["rank 1"], by_label["base"]
    mean, std, _ = Scores.summary(winner.scores.test)
    parts = [
        f"On the held-out test split over {len(winner.scores.seeds)} fresh seeds, the winner "
        f"(trial {winner.trial}) scores {100 * mean:.2f} +- {100 * std:.2f}: "
        + _compare(winner, base, f"the base (trial {base.trial})")
    ]
    runner_up = by_label.get("rank 2")
    if runner_up is not None:
        parts.append(_compare(winner, runner_up, f"the runner-up (trial {runner_up.trial})"))
    return "; ".join(parts) + "."
