"""Commands after the search: train (a spec, a bundle's architecture or a study's trial),
evaluate (a bundle's accuracy) and predict (classify image files with a bundle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from archspec.cli.app import command, err, out

DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="digits, synthetic, imagefolder:PATH or torchvision:NAME (as a search "
        "definition's data.dataset)",
    ),
]
LimitOpt = Annotated[
    int | None, typer.Option(min=2, help="use at most this many images (stratified)")
]


@command
def train(
    source: Annotated[
        str,
        typer.Argument(
            help="a spec file, a zoo name or a bundle (its architecture); or a study: a search "
            "definition or a study name"
        ),
    ],
    data: DataOpt = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="epochs (default 10)")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="default 128")] = None,
    lr: Annotated[float | None, typer.Option(min=0, help="peak learning rate (default 3e-3)")] = (
        None
    ),
    seed: Annotated[int, typer.Option(min=0, help="initial weights, split and batch order")] = 0,
    limit: LimitOpt = None,
    device: Annotated[str | None, typer.Option(help="auto (default), cpu, cuda, cuda:N, mps")] = (
        None
    ),
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads (default: torch's, one per core)")
    ] = None,
    trial: Annotated[
        str | None, typer.Option(help="a study: 'best' (default) or a trial number")
    ] = None,
    phi: Annotated[int | None, typer.Option(help="a study: the compound family member")] = None,
    storage: Annotated[str | None, typer.Option(help="a study's Optuna storage URL")] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="run folder: bundle/, metrics.csv, checkpoint.pt (default runs/train/NAME; "
            "a study: runs/STUDY/retrain/trial-N)",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="retrain from scratch over a finished run")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
) -> None:
    """Train to completion and write a bundle; an interrupted run resumes when re-run. A study's
    trial is retrained with the study's recorded recipe, data and seed."""
    from archspec.sources import name_source, spec_of
    from archspec.train.fit import fit

    log = None if quiet else _epoch_line
    progress = not quiet
    try:
        named = name_source(source, storage=storage, study=trial is not None or phi is not None)
        if named.kind == "study":
            changed = [
                flag
                for flag, value in (
                    ("--data", data),
                    ("--epochs", epochs),
                    ("--batch-size", batch_size),
                    ("--lr", lr),
                    ("--limit", limit),
                    ("--device", device),
                    ("--threads", threads),
                )
                if value is not None
            ]
            if changed or seed != 0:
                _usage(
                    f"{source} is a study: its trial is retrained with the recorded recipe; "
                    f"drop {', '.join(changed + (['--seed'] if seed else []))}"
                )
            if trial is not None and trial != "best" and not trial.isdigit():
                _usage(f"--trial is 'best' or a trial number; got {trial!r}")
            from archspec.search import load_study
            from archspec.search.retrain import fit_trial

            result = fit_trial(
                load_study(source, storage),
                output,
                trial=trial or "best",
                phi=phi,
                storage=storage,
                progress=progress,
                overwrite=force,
                on_epoch=log,
            )
        else:
            if data is None:
                _usage("--data is needed to train a spec (e.g. --data digits)")
            spec = spec_of(named)
            recipe = _recipe(
                epochs=epochs, batch_size=batch_size, lr=lr, device=device, threads=threads
            )
            result = fit(
                spec,
                _data(data, limit),
                recipe,
                output or Path("runs") / "train" / spec.name,
                seed=seed,
                provenance=_provenance(source),
                progress=progress,
                overwrite=force,
                on_epoch=log,
            )
    except KeyboardInterrupt:
        err.print(
            "interrupted; the last finished epoch is checkpointed: run the same command to resume",
            highlight=False,
        )
        raise typer.Exit(130) from None
    train_result = result.train
    resumed = f", resumed after epoch {train_result.resumed}" if train_result.resumed else ""
    out.print(
        f"validation accuracy {train_result.accuracy:.4f} after {len(train_result.history)} "
        f"epochs ({train_result.seconds:.1f} s{resumed})",
        highlight=False,
    )
    if result.expected is not None:
        same = "identical" if result.expected == train_result.accuracy else "differs"
        out.print(
            f"the study recorded {result.expected:.4f} for this trial: {same}", highlight=False
        )
    out.print(f"bundle: {result.bundle}", highlight=False)
    out.print(f"metrics: {result.folder / 'metrics.csv'}", highlight=False)


@command
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="a bundle folder")],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="evaluate on every image of this dataset instead of the bundle's own held-out "
            "split (digits, synthetic, imagefolder:PATH, torchvision:NAME)",
        ),
    ] = None,
    limit: LimitOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document")] = False,
) -> None:
    """Top-1 accuracy of a bundle, with its recorded preprocessing."""
    from archspec.bundle import load_bundle
    from archspec.train.evaluate import evaluate_bundle

    loaded = load_bundle(bundle)
    result = evaluate_bundle(loaded, _data(data, limit) if data is not None else None)
    if as_json:
        typer.echo(json.dumps(result.__dict__ | {"bundle": str(bundle)}))
        return
    out.print(
        f"accuracy {result.accuracy:.4f} on {result.images} images ({result.dataset}, "
        f"{result.split})",
        highlight=False,
    )


@command
def predict(
    bundle: Annotated[Path, typer.Argument(help="a bundle folder")],
    images: Annotated[list[Path], typer.Argument(help="image files")],
    topk: Annotated[int, typer.Option(min=1, help="classes to show per image")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document")] = False,
) -> None:
    """Classify image files: per image the path, the top class(es) and probability. Files that
    cannot be read get one line each on stderr (the rest still run) and exit status 1."""
    from archspec.bundle import load_bundle
    from archspec.predict import predict_files
    from archspec.text import shown

    results = predict_files(load_bundle(bundle), images, topk)
    failed = [r for r in results if r.error is not None]
    for r in failed:
        err.print(r.error, markup=False, highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results], indent=2))
    else:
        for r in results:
            if r.error is None:
                top = "  ".join(f"{shown(name)} {p:.4f}" for name, p in r.top)
                typer.echo(f"{shown(r.path)}\t{top}")
    if failed:
        raise typer.Exit(1)


def _usage(message: str) -> None:
    """A wrong combination of arguments: one line, exit 2 (click's usage-error status)."""
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _epoch_line(rows) -> None:
    from tqdm.auto import tqdm

    row = rows[-1]
    tqdm.write(
        f"epoch {row.epoch}: loss {row.train_loss:.4f}  val_accuracy {row.val_accuracy:.4f}  "
        f"lr {row.lr:.2e}  {row.seconds:.1f} s",
        file=err.file,
    )


def _data(name: str, limit: int | None):
    from pydantic import ValidationError

    from archspec.errors import SearchError
    from archspec.train.config import Data

    try:
        return Data(dataset=name, limit=limit)
    except ValidationError as exc:
        raise SearchError(f"--data {name}: {exc.errors()[0]['msg']}") from None


def _recipe(**options):
    """The search's `training:` defaults with the options given on the command line."""
    from pydantic import ValidationError

    from archspec.errors import SearchError
    from archspec.train.config import Training

    given = {key: value for key, value in options.items() if value is not None}
    try:
        return Training(**given)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0])
        raise SearchError(f"--{key.replace('_', '-')} {given.get(key)}: {error['msg']}") from None


def _provenance(source: str):
    from archspec.bundle import Provenance

    return Provenance(source="train", spec=source)
