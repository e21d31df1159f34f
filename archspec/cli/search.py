"""Commands about scaling and search: scale, search, report (export: cli/export.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from archspec.cli.app import command, err, kept, out
from archspec.errors import ScaleError

if TYPE_CHECKING:
    pass

StudyArg = Annotated[
    str, typer.Argument(help="a search definition (search/NAME.yaml) or a study name")
]
OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="KEY=VALUE changes applied before validation, as Hydra and yolo take them: a "
        "dotted key and a YAML value (training.epochs=3 sampler.name=tpe space.width=[1, 2])",
        show_default=False,
    ),
]
StorageOpt = Annotated[
    str | None,
    typer.Option(help="Optuna storage URL (default: the definition's, or sqlite:///runs/STUDY.db)"),
]


@command
def scale(
    spec: Annotated[str, typer.Argument(help="a spec file, or the name of a zoo model")],
    overrides: OverridesArg = None,
    depth: Annotated[float, typer.Option(help="depth multiplier (repeats, by --depth-rule)")] = 1.0,
    width: Annotated[float, typer.Option(help="width multiplier (channels, make_divisible)")] = 1.0,
    resolution: Annotated[float, typer.Option(help="input resolution multiplier")] = 1.0,
    size: Annotated[int | None, typer.Option(help="absolute input size instead")] = None,
    kernel: Annotated[
        list[str] | None, typer.Option(help="STAGE=K: kernel size of a named stage (repeatable)")
    ] = None,
    depth_rule: Annotated[
        str, typer.Option(help="ceil: each stage rounded up; spread: the total, last stages first")
    ] = "ceil",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="write here")] = None,
) -> None:
    """Scale a spec by depth, width and resolution (EfficientNet rules); print or write YAML."""
    from archspec.scaling.rewrite import scale as scale_spec
    from archspec.spec import load_spec
    from archspec.spec.dump import dump_spec, write_text_atomic
    from archspec.zoo import spec_path

    kernels = {}
    for item in kernel or []:
        stage, _, value = item.partition("=")
        if not stage or not value.isdigit():
            raise ScaleError(f"--kernel expects STAGE=K, e.g. stage3=5; got {item!r}")
        kernels[stage] = int(value)
    scaled = scale_spec(
        load_spec(spec_path(spec), overrides or ()),
        depth=depth,
        width=width,
        resolution=resolution,
        size=size,
        kernels=kernels or None,
        depth_rule=depth_rule,  # type: ignore[arg-type]  # checked by scale
    )
    header = (
        f"{spec} scaled: depth {depth:g} ({depth_rule}), width {width:g}, "
        f"resolution {resolution:g}"
        + (f", size {size}" if size else "")
        + "".join(f", {k}: kernel {v}" for k, v in kernels.items())
    )
    text = dump_spec(scaled, header=header)
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomic(output, text)
        err.print(f"wrote {output}", highlight=False)


@command
def search(
    definition: Annotated[
        str, typer.Argument(help="a search definition (search/NAME.yaml) or a shipped one's name")
    ],
    overrides: OverridesArg = None,
    trials: Annotated[
        int | None,
        typer.Option(
            help="finished trials the study should hold besides the base (trial 0; default: "
            "the file's); a rerun or a joining worker runs only the missing ones"
        ),
    ] = None,
    storage: StorageOpt = None,
    study_name: Annotated[
        str | None,
        typer.Option(
            help="the study's name instead of the file's `study` (its default storage "
            "sqlite:///runs/NAME.db and its folder runs/NAME/ follow it)"
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed (default: the file's)")] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0.001, help="stop after this many seconds")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=256, help="worker processes on this machine, all on one study (1-256)"
        ),
    ] = 1,
    gpus: Annotated[
        str | None,
        typer.Option(help="GPUs to spread the workers over, e.g. 0,1 (default: all visible)"),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="best spec (default: the file's export)")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
    save_top: Annotated[
        int, typer.Option(min=0, help="also bundle the K best trials as runs/STUDY/trial-N/")
    ] = 0,
    save_family: Annotated[
        bool, typer.Option("--save-family", help="also bundle the family as runs/STUDY/phi-K/")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="when another process runs the study's final step (family, re-evaluation), "
            "wait for it instead of stopping with exit 1 (a worker that trained some of the "
            "trials always waits)",
        ),
    ] = False,
    as_worker: Annotated[bool, typer.Option("--as-worker", hidden=True)] = False,
    threads: Annotated[int | None, typer.Option(hidden=True)] = None,
    worker_seed: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run an Optuna search until the study holds its trials (re-running resumes it; the same
    command with --storage on another machine joins it), print the result, export the best
    spec, and write the winner as a bundle (runs/STUDY/best/) with its evaluated weights."""
    from archspec.errors import ExportError
    from archspec.search import export_trial, load_search, run_search
    from archspec.search.report import print_report
    from archspec.search.workers.signals import Interrupted

    defn = load_search(definition, overrides or ())
    if study_name is not None:
        defn = defn.renamed(study_name)
    if trials is not None and trials < 0:
        raise typer.BadParameter("--trials must be >= 0")
    try:
        common = {"trials": trials, "storage": storage, "seed": seed, "timeout": timeout}
        if as_worker:  # one of --workers N: trials only; the launcher reports
            run_search(
                defn, **common, quiet=True, threads=threads, worker_seed=worker_seed, finalize=False
            )
            return
        launched, start = 0, time.perf_counter()
        if workers > 1:
            from archspec.search.workers import launch_workers

            launched, note = launch_workers(
                definition,
                defn,
                workers,
                study_name=study_name,
                gpus=gpus,
                quiet=quiet,
                **common,
            )
            if note:
                err.print(note, highlight=False, soft_wrap=True)
        result = run_search(
            defn, **common, quiet=quiet, save_top=save_top, save_family=save_family, wait=wait
        )
        result.added += launched
        result.seconds = time.perf_counter() - start
    except Interrupted as exc:
        err.print(str(exc), highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted; finished trials are stored: run the same command to resume")
        raise typer.Exit(130) from None
    url = storage or defn.storage_url
    written = [url[len("sqlite:///") :]] if url.startswith("sqlite:///") else []
    with kept(lambda: f"the search finished; its trials are kept in {url}"):
        print_report(result.study, out)
        for note in result.notes:
            out.print(note, highlight=False, soft_wrap=True)
        out.print(f"{result.added} trials in {result.seconds:.0f} s", highlight=False)
        try:
            path, _ = export_trial(result.study, output or defn.export_path)
            written.append(str(path))
            out.print(f"best spec written to {path}", highlight=False)
        except ExportError as exc:
            err.print(f"nothing exported: {exc.message}", highlight=False)
        for bundle in result.bundles:
            if bundle.path is None:
                err.print(f"no bundle {bundle.label}: {bundle.note}", highlight=False)
            else:
                written.append(f"{bundle.path}/")
                if bundle.note:
                    out.print(f"bundle {bundle.label}: {bundle.note}", highlight=False)
    storage_opt = "" if storage is None else f" --storage {storage}"
    out.print(
        "next steps:\n"
        f"  study storage:  {url}\n"
        f"  report:         archspec report {defn.study}{storage_opt}   (add --json for scripts)\n"
        f"  dashboard:      optuna-dashboard {url}\n"
        f"  files written:  {', '.join(written) or 'none'}",
        highlight=False,
    )


@command
def report(
    study: StudyArg,
    storage: StorageOpt = None,
    plots: Annotated[
        Path | None, typer.Option(help="folder for the plots (default: runs/STUDY)")
    ] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="only the tables")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="print one JSON document instead (no plots)")
    ] = False,
) -> None:
    """The base, the best trials or Pareto front, the compound family and the seeds
    re-evaluation as tables; plots as HTML and PNG. Reads the stored study, trains nothing."""
    from archspec.search import load_study
    from archspec.search.report import print_report, report_json, save_plots

    loaded = load_study(study, storage)
    if as_json:
        typer.echo(json.dumps(report_json(loaded), indent=2, allow_nan=False))
        return
    print_report(loaded, out)
    if no_plots:
        return
    written, skipped = save_plots(loaded, plots or Path("runs") / loaded.study_name)
    for path in written:
        out.print(f"plot: {path}", highlight=False)
    for reason in skipped:
        err.print(f"plot skipped: {reason}", highlight=False)
