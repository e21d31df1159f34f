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
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="KEY=VALUE: training.* and data.* set the recipe and the data (training.epochs=3 "
            "data.dataset=digits), other keys the spec (input.size=16)",
            show_default=False,
        ),
    ] = None,
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
    recipe_file: Annotated[
        Path | None,
        typer.Option(
            "--recipe",
            help="a YAML file whose `training:` section is the recipe (a search definition "
            "works); the options above override it",
        ),
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
    nproc: Annotated[
        int,
        typer.Option(
            min=1,
            help="train one network in this many processes (DistributedDataParallel, one GPU "
            "each, or gloo on the CPU); the batch size is the global batch",
        ),
    ] = 1,
) -> None:
    """Train to completion and write a bundle; an interrupted run resumes when re-run. A study's
    trial is retrained with the study's recorded recipe, data and seed."""
    import sys

    from archspec.sources import name_source, spec_of
    from archspec.train import distributed
    from archspec.train.fit import fit

    if nproc > 1:
        argv = sys.argv[1:]
        if "train" not in argv:
            _usage("--nproc starts `archspec train` again in N processes: use it from a shell")
        argv = [a for i, a in enumerate(argv) if not _is_nproc(argv, i)]
        raise typer.Exit(distributed.launch(nproc, argv))
    distributed.join(device or "auto")
    rank = distributed.rank()
    quiet = quiet or rank != 0  # one process reports
    log = None if quiet else _epoch_line
    progress = not quiet
    try:
        named = name_source(source, storage=storage, study=trial is not None or phi is not None)
        setup = [o for o in overrides or () if o.split(".")[0].split("=")[0] in SETUP_KEYS]
        spec_overrides = [o for o in overrides or () if o not in setup]
        if named.kind == "study":
            if overrides:
                _usage(
                    f"{source} is a study: its trial is retrained as recorded; drop the overrides"
                )
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
                    ("--recipe", recipe_file),
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
            from archspec.search.study.storage import study_url

            result = fit_trial(
                load_study(source, storage),
                output,
                url=study_url(source, storage)[1],
                trial=trial or "best",
                phi=phi,
                storage=storage,
                progress=progress,
                overwrite=force,
                on_epoch=log,
            )
        else:
            if data is None and not any(o.startswith("data.dataset=") for o in setup):
                _usage("--data is needed to train a spec (e.g. --data digits)")
            if spec_overrides and named.kind == "bundle":
                _usage(f"{source} is a bundle: its architecture is fixed; drop {spec_overrides[0]}")
            spec = spec_of(named, spec_overrides)
            recipe = _recipe(
                recipe_file,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                device=device,
                threads=threads,
            )
            dataset, recipe = _with_overrides(
                _data(data, limit) if data is not None else None, recipe, setup
            )
            result = fit(
                spec,
                dataset,
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
    finally:
        distributed.leave()
    if rank != 0:
        return
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


def _is_nproc(argv: list[str], i: int) -> bool:
    """argv[i] is --nproc, its value, or --nproc=N."""
    return (
        argv[i] == "--nproc"
        or argv[i].startswith("--nproc=")
        or (i > 0 and argv[i - 1] == "--nproc")
    )


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


SETUP_KEYS = ("training", "data")  # overrides of `archspec train` that are not the spec's


def _with_overrides(data, recipe, overrides: list[str]):
    """(Data, Training) with `training.*` and `data.*` overrides applied and validated; a bad
    value is located at the override that wrote it."""
    if not overrides:
        return data, recipe
    from archspec.errors import Location, SearchError
    from archspec.spec.compose import apply_overrides, walk
    from archspec.spec.load import validate_source
    from archspec.spec.yamlsource import Source
    from archspec.train.config import Setup

    fields = {
        "data": data.model_dump(exclude_unset=True) if data is not None else {},
        "training": recipe.model_dump(exclude_unset=True),
    }
    options = Location("the command line's options")
    source = Source(fields, options.file)
    for path, _ in walk(fields):
        source.values[path] = source.keys[path] = options
    source = apply_overrides(source, overrides)
    setup = validate_source(source, Setup, SearchError, "the data and the recipe")
    return setup.data, setup.training


def _data(name: str, limit: int | None):
    from pydantic import ValidationError

    from archspec.errors import SearchError
    from archspec.train.config import Data

    try:
        return Data(dataset=name, limit=limit)
    except ValidationError as exc:
        raise SearchError(f"--data {name}: {exc.errors()[0]['msg']}") from None


def _recipe(path: Path | None, **options):
    """The search's `training:` defaults, or the `training:` section of `path`, with the options
    given on the command line."""
    from pydantic import ValidationError

    from archspec.errors import SearchError
    from archspec.train.config import Training

    base: dict = {}
    if path is not None:
        base = _training_section(path)
    given = {key: value for key, value in options.items() if value is not None}
    try:
        base = Training.model_validate(base).model_dump() if base else {}
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise SearchError(f"{path}: training.{where}: {error['msg']}") from None
    try:
        return Training(**(base | given))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0])
        raise SearchError(f"--{key.replace('_', '-')} {given.get(key)}: {error['msg']}") from None


def _training_section(path: Path) -> dict:
    import yaml

    from archspec.errors import SearchError

    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SearchError(f"--recipe {path}: cannot read it ({exc})") from None
    section = document.get("training") if isinstance(document, dict) else None
    if not isinstance(section, dict):
        raise SearchError(f"--recipe {path}: no `training:` section")
    return section


def _provenance(source: str):
    from archspec.bundle import Provenance

    return Provenance(source="train", spec=source)
