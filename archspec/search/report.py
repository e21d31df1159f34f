"""What a study found, from its stored records: the trials against the base (effective
multipliers, FLOPs ratio, gain over the base), the compound family (target and achieved FLOPs
ratios), the seeds re-evaluation on validation and test with its verdict, how candidates were
kept comparable, the same as one JSON document, and Optuna's plots as HTML and PNG."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich import box
from rich.console import Console
from rich.table import Table

from archspec.search.definition.space import Candidate
from archspec.search.study.queries import (
    Tally,
    base_trial,
    is_repeat,
    pareto_trials,
    ranked_trials,
    records,
    unfinished,
)
from archspec.search.study.records import (
    Evaluated,
    Scores,
    TrialRecord,
    read_evaluation,
    read_family,
    read_study,
    read_trial,
)


def fairness_note(study: optuna.Study) -> str:
    """How every candidate was given the same chance, in one paragraph."""
    info = read_study(study)
    training = info.setup["training"]
    n_train, n_val, n_test = info.split
    smoothing = training["label_smoothing"]
    epochs = training["epochs"]
    return (
        f"Same recipe for every candidate: dataset {info.dataset}, one fixed stratified split "
        f"({n_train} train / {n_val} validation / {n_test} test, seed {info.seed}); weights "
        f"initialised after torch.manual_seed({info.seed}); batches drawn in the same order (a "
        f"torch.Generator seeded {info.seed} in every trial); {epochs} epoch"
        f"{'s' * (epochs != 1)} of {training['optimizer']} (lr {training['lr']:g}, batch "
        f"{training['batch_size']}, cosine schedule"
        f"{f', label smoothing {smoothing:g}' if smoothing else ''}); trials are selected by "
        "top-1 on the validation split after the last epoch; the test split is read only by "
        "the seeds re-evaluation; latency is the median batch-1 forward. Multipliers are "
        "effective (what the built network has: repeats, FLOPs-weighted channels, pixels, "
        "over the base's); every trial is a distinct network."
    )


def counts(study: optuna.Study) -> str:
    seen = records(study)
    status = [r.status for t, r in seen if r.role == "candidate" and not is_repeat(t)]
    trials = [t for t in study.get_trials(deepcopy=False) if not is_repeat(t)]
    failed = sum(1 for t in trials if t.state == TrialState.FAIL)
    repeats = Tally.of(study).repeats
    base = next((t.number for t, r in seen if r.role == "base"), None)
    named = "no base yet" if base is None else f"the base (trial {base})"
    return (
        f"{len(trials)} trials, each a distinct network: {named}, {status.count('trained')} "
        f"trained, {status.count('rejected')} rejected by constraints before training, "
        f"{status.count('pruned')} pruned, {failed} failed; {repeats} proposal"
        f"{'s' * (repeats != 1)} rebuilt an earlier network (not trials: the sampler was asked "
        "again)"
    )


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if kind == "acc":
        return f"{value:.4f}"
    if kind == "gain":
        return f"{100 * value:+.2f}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "mflops":
        return f"{value / 1e6:.2f}"
    if kind == "ratio":
        return f"{value:.2f}x"
    return f"{value:.2f}"


COLUMNS = ("trial", "depth", "width", "res", "kernels", "px", "FLOPs", "acc", "gain", "params",
           "MFLOPs", "ms")  # fmt: skip


def _row(label: str, record: TrialRecord, base_acc: float | None, reward: float | None) -> list:
    eff = record.effective
    gain = None
    if record.accuracy is not None and base_acc is not None:
        gain = record.accuracy - base_acc
    kernels = Candidate.from_attrs(record.knobs).kernels
    row = [
        label,
        *(_fmt(getattr(eff, k), "") if eff else "-" for k in ("depth", "width", "resolution")),
        ",".join(str(v) for v in kernels.values()) or "-",
        str(record.size) if record.size else "-",
        _fmt(eff.flops_ratio if eff else None, "ratio"),
        _fmt(record.accuracy, "acc"),
        _fmt(gain, "gain"),
        _fmt(record.params, "int"),
        _fmt(record.flops, "mflops"),
        _fmt(record.latency_ms, "ms"),
    ]
    if reward is not None:
        row.append(_fmt(reward, "acc"))
    return row


def results_table(study: optuna.Study, top: int = 5) -> Table:
    """The base, then the best `top` distinct networks (single objective) or the Pareto front
    (several), with effective multipliers and the accuracy gain over the base."""
    info = read_study(study)
    multi = len(study.directions) > 1
    rows = pareto_trials(study) if multi else ranked_trials(study)[:top]
    if multi:
        title = f"{study.study_name}: Pareto front ({', '.join(info.metrics)})"
    else:
        title = f"{study.study_name}: best trials by {info.metrics[0]}"
    base = base_trial(study)
    base_acc = base[1].accuracy if base else None
    stages = [s for t in rows[:1] for s in Candidate.from_attrs(read_trial(t).knobs).kernels]
    caption = (
        (f"kernels of {', '.join(stages)}; " if stages else "")
        + "depth, width, res: effective multipliers over the base; FLOPs: analysed FLOPs over "
        "the base's; acc: validation top-1; gain: points over the base; px: input size; ms: "
        "batch-1 latency"
    )
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)
    reward = "reward" in info.metrics
    for name in COLUMNS + (("reward",) if reward else ()):
        if name != "kernels" or stages:
            table.add_column(name, justify="left" if name == "kernels" else "right",
                             no_wrap=True, min_width=len(name))  # fmt: skip
    entries = [(f"{base[0].number} base", base[1], None)] if base else []
    for trial in rows:
        value = trial.values[info.metrics.index("reward")] if reward else None
        entries.append((str(trial.number), read_trial(trial), value))
    for label, record, value in entries:
        row = _row(label, record, base_acc, value if reward else None)
        if reward and value is None:
            row[-1] = "-"
        table.add_row(*(row if stages else row[:4] + row[5:]))
    return table


def family_table(study: optuna.Study) -> Table | None:
    """Compound mode: the family phi = 1..K, target and achieved FLOPs ratios."""
    family = read_family(study)
    if family is None:
        return None
    base = base_trial(study)
    base_acc = base[1].accuracy if base else None
    first = family.members[0].knobs
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title=(
            f"compound family from trial {family.trial}: effective alpha={first['depth']:.3f} "
            f"beta={first['width']:.3f} gamma={first['resolution']:.3f}"
        ),
        caption=f"target: flops_ratio^phi; achieved: analysed FLOPs over the base's (band "
        f"+-{100 * family.tolerance:g}%)",
    )
    for name in ("phi", "depth", "width", "res", "px", "target", "achieved", "acc", "gain",
                 "params", "MFLOPs", "ms"):  # fmt: skip
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    for m in family.members:
        eff = m.effective
        gain = None if m.accuracy is None or base_acc is None else m.accuracy - base_acc
        achieved = _fmt(eff.flops_ratio if eff else None, "ratio")
        table.add_row(
            str(m.phi),
            *(_fmt(getattr(eff, k), "") if eff else "-" for k in ("depth", "width", "resolution")),
            str(m.size) if m.size else (m.error or "-"),
            _fmt(m.target_flops_ratio, "ratio"),
            achieved + ("" if m.in_band else " (outside)"),
            _fmt(m.accuracy, "acc"), _fmt(gain, "gain"), _fmt(m.params, "int"),
            _fmt(m.flops, "mflops"), _fmt(m.latency_ms, "ms"),
        )  # fmt: skip
    return table


def _stat(values: list[float]) -> str:
    mean, std, _ = Scores.summary(values)
    why = Scores.unjudged(values)
    low, high = Scores.interval(values)
    shown = f" ({why})" if why is not None else f" [{low:.4f}, {high:.4f}]"
    return f"{mean:.4f} +- {std:.4f}{shown}"


def evaluation_table(study: optuna.Study) -> Table | None:
    """The seeds re-evaluation: mean +- std and the 95% interval on validation and test."""
    evaluation = read_evaluation(study)
    if evaluation is None:
        return None
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title=f"re-evaluated with seeds {', '.join(map(str, evaluation.seeds))} (not the "
        "selection seed)",
        caption="mean +- std [95% interval of the mean]; test gain: points over the base",
    )
    for name in ("network", "trial", "params", "MFLOPs", "validation", "test", "test gain"):
        table.add_column(name, justify="right", no_wrap=True)
    base = next((e for e in evaluation.entries if e.label == "base"), None)
    base_test = Scores.summary(base.scores.test)[0] if base else None
    for e in evaluation.entries:
        mean = Scores.summary(e.scores.test)[0]
        gain = None if base_test is None else mean - base_test
        table.add_row(
            e.label, "-" if e.trial is None else str(e.trial), _fmt(e.params, "int"),
            _fmt(e.flops, "mflops"), _stat(e.scores.val), _stat(e.scores.test),
            _fmt(gain, "gain"),
        )  # fmt: skip
    return table


def print_report(study: optuna.Study, console: Console) -> None:
    for table in (results_table(study), family_table(study), evaluation_table(study)):
        if table is not None:
            console.print(table)
    evaluation = read_evaluation(study)
    if evaluation is not None:
        console.print(evaluation.verdict, highlight=False)
    console.print(counts(study), highlight=False)
    for number, note in unfinished(study).items():
        console.print(f"trial {number} never finished: {note}", highlight=False, soft_wrap=True)
    console.print(fairness_note(study), highlight=False, soft_wrap=False)


# --- the same as JSON ----------------------------------------------------------------------


def _scores(entry: Evaluated | None) -> dict[str, Any]:
    if entry is None:
        keys = ("val_accuracy_mean", "val_accuracy_std", "test_accuracy_mean",
                "test_accuracy_std")  # fmt: skip
        return {**dict.fromkeys(keys), "seeds": []}
    val_mean, val_std, _ = Scores.summary(entry.scores.val)
    test_mean, test_std, _ = Scores.summary(entry.scores.test)
    return {
        "val_accuracy_mean": val_mean,
        "val_accuracy_std": val_std,
        "test_accuracy_mean": test_mean,
        "test_accuracy_std": test_std,
        "seeds": entry.scores.seeds,
    }


def report_json(study: optuna.Study) -> dict[str, Any]:
    """One JSON-ready document: every trial, the base, the winner, the family, the verdict."""
    info = read_study(study)
    evaluation = read_evaluation(study)
    entries = {e.label: e for e in evaluation.entries} if evaluation else {}
    trials = []
    for trial in study.get_trials(deepcopy=False):
        record = read_trial(trial)
        eff = record.effective if record else None
        trials.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "status": "running" if record is None else record.status,
                "role": None if record is None else record.role,
                # a repeat proposal rebuilt an earlier trial's network: not a trial
                "repeat": is_repeat(trial),
                "trained": bool(record and record.trained and record.same_as is None),
                "effective": None
                if eff is None
                else {
                    "depth": eff.depth,
                    "width": eff.width,
                    "resolution": eff.resolution,
                },
                "input_size": record.size if record else None,
                "kernels": Candidate.from_attrs(record.knobs).kernels if record else {},
                "params": record.params if record else None,
                "flops": record.flops if record else None,
                "flops_ratio": eff.flops_ratio if eff else None,
                "latency_ms": record.latency_ms if record else None,
                "accuracy": record.accuracy if record else None,
                "same_as": record.same_as if record else None,
                "reason": record.reason if record else None,
            }
        )
    base = base_trial(study)
    ranked = ranked_trials(study)
    if len(study.directions) > 1:
        front = {t.number for t in pareto_trials(study)}
        ranked = [t for t in ranked if t.number in front]

    def summary(trial: FrozenTrial | None, record: TrialRecord | None, label: str) -> Any:
        if trial is None or record is None:
            return None
        return {
            "number": trial.number,
            "params": record.params,
            "flops": record.flops,
            "accuracy": record.accuracy,
            **_scores(entries.get(label)),
        }

    doc: dict[str, Any] = {
        "study": study.study_name,
        "mode": info.mode,
        "metrics": info.metrics,
        "seed": info.seed,
        "split": dict(zip(("train", "validation", "test"), info.split, strict=True)),
        "base_flops": info.base_flops,
        "trials": trials,
        "base": summary(*(base or (None, None)), "base"),
        "winner": summary(ranked[0], read_trial(ranked[0]), "rank 1") if ranked else None,
        "verdict": evaluation.verdict if evaluation else None,
    }
    family = read_family(study)
    if info.mode == "compound":
        doc["family"] = [
            {
                "phi": m.phi,
                "trial": m.trial,
                "params": m.params,
                "flops": m.flops,
                "flops_ratio": m.effective.flops_ratio if m.effective else None,
                "target_flops_ratio": m.target_flops_ratio,
                "in_band": m.in_band,
                "accuracy": m.accuracy,
                **_scores(entries.get("rank 1" if m.phi == 1 else f"phi={m.phi}")),
            }
            for m in (family.members if family else [])
        ]
    return doc


# --- plots ---------------------------------------------------------------------------------


# The importances of a handful of networks are noise (the example: 6 points, ranked
# the wrong way round): below this many distinct trained networks the plot is left out.
MIN_IMPORTANCE_NETWORKS = 8


def save_plots(study: optuna.Study, out_dir: str | Path) -> tuple[list[Path], list[str]]:
    """Optimization history and Pareto front (several objectives) on the study itself (Optuna's
    trial numbers); parameter importances and slices on the built networks: one point per
    distinct trained network, its effective depth, width and resolution (and kernels) as the
    parameters, the count in the title; importances left out below MIN_IMPORTANCE_NETWORKS.
    Each as HTML (plotly) and PNG (matplotlib). Returns (files written, plots skipped, why)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna import visualization as vis
    from optuna.visualization import matplotlib as vis_mpl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = read_study(study).metrics
    built = built_networks(study)
    count = len(built.trials)
    single = len(metrics) == 1
    # several objectives: history and importances of the first one (lower is better for
    # PED-ANOVA, so a maximized objective is negated)
    sign = -1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1
    first = {"target": lambda t: t.values[0], "target_name": metrics[0]}
    ranked = {"target": lambda t: sign * t.values[0], "target_name": metrics[0]}
    on_networks = f" of the built networks ({count} distinct, trained)"
    plots: dict[str, tuple[Any, Any, dict[str, Any], optuna.Study, str | None]] = {
        "history": (vis.plot_optimization_history, vis_mpl.plot_optimization_history,
                    {} if single else first, study, None),
        "importances": (vis.plot_param_importances, vis_mpl.plot_param_importances,
                        {} if single else ranked, built, "importance" + on_networks),
        "slice": (vis.plot_slice, vis_mpl.plot_slice, {} if single else first, built,
                  "accuracy against the effective multipliers" + on_networks),
    }  # fmt: skip
    if not single:
        plots["pareto_front"] = (vis.plot_pareto_front, vis_mpl.plot_pareto_front,
                                 {"target_names": metrics}, study, None)  # fmt: skip
    written: list[Path] = []
    skipped: list[str] = []
    if count < MIN_IMPORTANCE_NETWORKS:
        del plots["importances"]
        skipped.append(
            f"importances: left out: {count} distinct trained network{'s' * (count != 1)}, "
            f"fewer than the {MIN_IMPORTANCE_NETWORKS} an importance needs to mean anything"
        )
    if count == 0:
        del plots["slice"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # the target is already negated for a maximized objective
        warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator")
        for name, (plotly_fn, mpl_fn, kwargs, source, title) in plots.items():
            try:
                figure = plotly_fn(source, **kwargs)
                axes = mpl_fn(source, **kwargs)
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                skipped.append(f"{name}: {exc}")
                continue
            fig = getattr(axes, "figure", None) or axes.flat[0].figure
            if title is not None:
                figure.update_layout(title=title)
                fig.suptitle(title)
            html = out / f"{name}.html"
            figure.write_html(str(html), include_plotlyjs="directory")
            png = out / f"{name}.png"
            fig.savefig(png, dpi=110, bbox_inches="tight")
            plt.close(fig)
            written += [html, png]
    return written, skipped


def built_networks(study: optuna.Study) -> optuna.Study:
    """An in-memory study with one trial per distinct trained feasible network (its first
    trial), whose parameters are what was built: the effective depth, width and resolution and
    the kernel of each stage that varies (renumbered: for importances and slices only)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    rows = []
    for trial in ranked_trials(study):
        record = read_trial(trial)
        if record.effective is None:
            continue
        values: dict[str, Any] = {
            "depth": record.effective.depth,
            "width": record.effective.width,
            "resolution": record.effective.resolution,
        }
        for stage, k in Candidate.from_attrs(record.knobs).kernels.items():
            values[f"kernel_{stage}"] = k
        rows.append((trial, values))
    varying = [k for k in (rows[0][1] if rows else {}) if len({v[k] for _, v in rows}) > 1]
    distributions: dict[str, Any] = {}
    for key in varying:
        seen = sorted({v[key] for _, v in rows})
        distributions[key] = (
            CategoricalDistribution(seen)
            if key.startswith("kernel_")
            else FloatDistribution(seen[0], seen[-1])
        )
    copy = optuna.create_study(study_name=study.study_name, directions=study.directions)
    copy.add_trials(
        [
            optuna.trial.create_trial(
                params={k: values[k] for k in varying},
                distributions=distributions,
                values=trial.values,
            )
            for trial, values in sorted(rows, key=lambda tv: tv[0].number)
        ]
    )
    return copy
