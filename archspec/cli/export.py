"""The export command: a bundle, spec or study's trial to yaml, safetensors, onnx, pt2,
torchscript or standalone PyTorch source, each file verified against the eager model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archspec.cli.app import command, err, out
from archspec.errors import ExportError

_FORMATS = "yaml, safetensors, onnx, openvino, pt2, torchscript, py"  # archspec.export.FORMATS


@command
def export(
    source: Annotated[
        str,
        typer.Argument(
            help="a bundle directory, a spec file or zoo name, or a study (a search "
            "definition or a study name)"
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="the file to write")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help=f"{_FORMATS}; default: from the -o extension"),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(help="a spec's weights (.safetensors); default: random (seed 0)"),
    ] = None,
    trial: Annotated[str, typer.Option(help="a study's 'best' trial or a trial number")] = "best",
    phi: Annotated[
        int | None, typer.Option(help="a compound study's family member phi instead")
    ] = None,
    storage: Annotated[str | None, typer.Option(help="the study's Optuna storage URL")] = None,
    optimize: Annotated[
        bool,
        typer.Option("--optimize", help="fold BatchNorm into convolutions, pick the faster layout"),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
    tolerance: Annotated[
        float, typer.Option(help="allowed max abs difference, relative to the largest output")
    ] = 1e-4,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="onnx, openvino: post-training int8, calibrated on the bundle's training split "
            "(or --data), written only when its top-1 agrees with float32 on the test split",
        ),
    ] = False,
    data: Annotated[
        str | None,
        typer.Option(help="--int8: calibrate and check on this dataset instead (all of it)"),
    ] = None,
    tolerance_top1: Annotated[
        float, typer.Option(help="--int8: least top-1 agreement with float32 (0.99: 99%)")
    ] = 0.99,
) -> None:
    """Write a model to a file and verify it right away: the file is loaded back, run on fixed
    inputs at batch 1 and 4, and compared with the eager model (max abs difference printed)."""
    from archspec.export import export as export_model
    from archspec.export import format_for
    from archspec.sources import load_source

    if trial != "best" and not trial.isdigit():
        raise typer.BadParameter("--trial is 'best' or a trial number")
    if not 0 <= tolerance < 1:  # NaN fails too
        raise typer.BadParameter(f"--tolerance must be in [0, 1); got {tolerance}")
    fmt_name = format_for(output, fmt).name
    if output.exists() and not force:
        raise ExportError(f"{output} exists; pass --force to overwrite it")
    loaded = load_source(
        source,
        weights=weights,
        trial=int(trial) if trial.isdigit() else trial,
        phi=phi,
        storage=storage,
    )
    with err.status(f"exporting {loaded.spec.name} to {fmt_name}"):
        result = export_model(
            loaded,
            output,
            fmt_name,
            optimize_graph=optimize,
            force=force,
            tolerance=tolerance,
            int8=int8,
            data=_dataset(data) if data is not None else None,
            min_agreement=tolerance_top1,
        )
    if result.optimized is not None:
        out.print(result.optimized.describe(), highlight=False, soft_wrap=True)
    out.print(result.describe(), highlight=False, soft_wrap=True)
    out.print(f"weights: {loaded.weights}", highlight=False, soft_wrap=True)


def _dataset(name: str):
    from pydantic import ValidationError

    from archspec.train.config import Data

    try:
        return Data(dataset=name)
    except ValidationError as exc:
        raise ExportError(f"--data {name}: {exc.errors()[0]['msg']}") from None
