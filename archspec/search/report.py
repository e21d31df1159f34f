"""What a study found: the best trial or the Pareto front as a table, the compound family, how
candidates were kept comparable, and Optuna's plots as HTML and PNG."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich import box
from rich.console import Console
from rich.table import Table

from archspec.search.results import best_trial, feasible_trials, pareto_trials
from archspec.search.space import Candidate
from archspec.search.storage import study_info


def fairness_note(study: optuna.Study) -> str:
    """How every candidate was given the same chance, in one paragraph."""
    info = study_info(study)
    training = info["setup"]["training"]
    n_train, n_val = info["split"]
    smoothing = training["label_smoothing"]
    epochs = training["epochs"]
    return (
        f"Same recipe for every candidate: dataset {info['dataset']}, one fixed stratified split "
        f"({n_train} train / {n_val} validation, seed {info['seed']}); weights initialised after "
        f"torch.manual_seed({info['seed']}); batches drawn in the same order (a torch.Generator "
        f"seeded {info['seed']} in every trial); {epochs} epoch{'s' * (epochs != 1)} of "
        f"{training['optimizer']} (lr {training['lr']:g}, batch {training['batch_size']}, cosine "
        f"schedule{f', label smoothing {smoothing:g}' if smoothing else ''}); accuracy is top-1 "
        "on the validation split after the last epoch; latency is the median batch-1 forward."
    )


def counts(study: optuna.Study) -> str:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    infeasible = sum(1 for t in complete if not t.user_attrs.get("feasible", True))
    pruned = sum(1 for t in trials if t.state == TrialState.PRUNED)
    failed = sum(1 for t in trials if t.state == TrialState.FAIL)
    return (
        f"{len(trials)} trials: {len(complete) - infeasible} trained, {infeasible} rejected by "
        f"constraints before training, {pruned} pruned, {failed} failed"
    )


def _fmt_candidate(attrs: dict[str, Any]) -> tuple[str, str, str, str]:
    cand = Candidate.from_attrs(attrs)
    kernels = ",".join(str(v) for v in cand.kernels.values()) or "-"
    return f"{cand.depth:.2f}", f"{cand.width:.2f}", f"{cand.resolution:.2f}", kernels


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "acc":
        return f"{value:.4f}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "mflops":
        return f"{value / 1e6:.2f}"
    return f"{value:.2f}"


COLUMNS = ("trial", "depth", "width", "res", "kernels", "px", "acc", "params", "MFLOPs", "ms")


def results_table(study: optuna.Study, top: int = 5) -> Table:
    """Single objective: the best `top` feasible trials, best first. Several: the Pareto front."""
    info = study_info(study)
    multi = len(study.directions) > 1
    if multi:
        rows = pareto_trials(study)
        title = f"{study.study_name}: Pareto front ({', '.join(info['metrics'])})"
    else:
        best = best_trial(study)
        rows = _ranked(study)[:top] if best else []
        title = f"{study.study_name}: best trials by {info['metrics'][0]}"
    stages = [s for t in rows[:1] for s in Candidate.from_attrs(t.user_attrs["candidate"]).kernels]
    kernels = bool(stages)
    caption = (
        f"kernels of {', '.join(stages)}; px: input size; ms: batch-1 latency"
        if kernels
        else ("px: input size; ms: batch-1 latency")
    )
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)
    for name in COLUMNS:
        if name != "kernels" or kernels:
            table.add_column(
                name,
                justify="left" if name == "kernels" else "right",
                no_wrap=True,
                min_width=len(name),
            )
    if "reward" in info["metrics"]:
        table.add_column("reward", justify="right")
    for trial in rows:
        row = _row(trial, info)
        table.add_row(*(row if kernels else row[:4] + row[5:]))
    return table


def _ranked(study: optuna.Study) -> list[FrozenTrial]:
    sign = -1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1
    return sorted(feasible_trials(study), key=lambda t: (sign * t.values[0], t.number))


def _row(trial: FrozenTrial, info: dict[str, Any]) -> list[str]:
    a = trial.user_attrs
    size = a.get("size")
    same = a.get("same_as")
    row = [
        str(trial.number) if same is None else f"{trial.number}={same}",
        *_fmt_candidate(a["candidate"]),
        str(size) if size else "-",
        _fmt(a.get("accuracy"), "acc"),
        _fmt(a.get("params"), "int"),
        _fmt(a.get("flops"), "mflops"),
        _fmt(a.get("latency_ms"), "ms"),
    ]
    if "reward" in info["metrics"]:
        row.append(_fmt(trial.values[info["metrics"].index("reward")], "acc"))
    return row


def family_table(study: optuna.Study) -> Table | None:
    """Compound mode: the family phi = 1..K scaled from the best alpha, beta, gamma."""
    family = study.user_attrs.get("family")
    if not family:
        return None
    first = Candidate.from_attrs(family["members"][0]["candidate"])
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title=(
            f"compound family (trial {family['trial']}): alpha={first.depth:.2f} "
            f"beta={first.width:.2f} gamma={first.resolution:.2f}"
        ),
    )
    for name in ("phi", "depth", "width", "res", "px", "acc", "params", "MFLOPs", "ms"):
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    for m in family["members"]:
        depth, width, resolution, _ = _fmt_candidate(m["candidate"])
        size = m.get("size")
        table.add_row(
            str(m["phi"]), depth, width, resolution,
            str(size) if size else m.get("error", "-"),
            _fmt(m.get("accuracy"), "acc"), _fmt(m.get("params"), "int"),
            _fmt(m.get("flops"), "mflops"), _fmt(m.get("latency_ms"), "ms"),
        )  # fmt: skip
    return table


def print_report(study: optuna.Study, console: Console) -> None:
    console.print(results_table(study))
    family = family_table(study)
    if family is not None:
        console.print(family)
    console.print(counts(study), highlight=False)
    console.print(fairness_note(study), highlight=False, soft_wrap=False)


# --- plots ---------------------------------------------------------------------------------


def save_plots(study: optuna.Study, out_dir: str | Path) -> tuple[list[Path], list[str]]:
    """Optimization history, Pareto front (several objectives) and parameter importances, each
    as HTML (plotly) and PNG (matplotlib), over the trained trials only (a rejected candidate's
    zero accuracy would only stretch the axes). Returns (files written, plots skipped, why)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna import visualization as vis
    from optuna.visualization import matplotlib as vis_mpl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = study_info(study)["metrics"]
    trained = _trained_copy(study)
    single = len(metrics) == 1
    # several objectives: history and importances of the first one (lower is better for
    # PED-ANOVA, so a maximized objective is negated)
    sign = -1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1
    first = {"target": lambda t: t.values[0], "target_name": metrics[0]}
    ranked = {"target": lambda t: sign * t.values[0], "target_name": metrics[0]}
    plots: dict[str, tuple[Any, Any, dict[str, Any]]] = {
        "history": (vis.plot_optimization_history, vis_mpl.plot_optimization_history,
                    {} if single else first),
        "importances": (vis.plot_param_importances, vis_mpl.plot_param_importances,
                        {} if single else ranked),
    }  # fmt: skip
    if not single:
        plots["pareto_front"] = (vis.plot_pareto_front, vis_mpl.plot_pareto_front,
                                 {"target_names": metrics})  # fmt: skip
    written: list[Path] = []
    skipped: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # the target is already negated for a maximized objective
        warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator")
        for name, (plotly_fn, mpl_fn, kwargs) in plots.items():
            try:
                figure = plotly_fn(trained, **kwargs)
                axes = mpl_fn(trained, **kwargs)
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                skipped.append(f"{name}: {exc}")
                continue
            html = out / f"{name}.html"
            figure.write_html(str(html), include_plotlyjs="directory")
            png = out / f"{name}.png"
            fig = getattr(axes, "figure", None) or axes.flat[0].figure
            fig.savefig(png, dpi=110, bbox_inches="tight")
            plt.close(fig)
            written += [html, png]
    return written, skipped


def _trained_copy(study: optuna.Study) -> optuna.Study:
    """An in-memory study holding the trained trials (feasible complete ones, and pruned)."""
    copy = optuna.create_study(study_name=study.study_name, directions=study.directions)
    keep = [
        t
        for t in study.get_trials(deepcopy=False)
        if (t.state == TrialState.COMPLETE and t.user_attrs.get("feasible"))
        or (t.state == TrialState.PRUNED and t.intermediate_values)
    ]
    copy.add_trials(keep)
    return copy
