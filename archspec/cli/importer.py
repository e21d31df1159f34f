"""`archspec import`: a PyTorch model (torchvision, timm or your own callable) as a spec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archspec.cli.app import command, out


@command(name="import")
def import_(
    source: Annotated[
        str,
        typer.Argument(help="torchvision:NAME, timm:NAME or package.module:callable"),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="the spec file to write")],
    input: Annotated[
        str, typer.Option("--input", help="the input shape: channels,height,width")
    ] = "3,224,224",
    kwargs: Annotated[
        str | None, typer.Option("--kwargs", help="JSON arguments for the builder")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing file")] = False,
) -> None:
    """Trace SOURCE, map it op for op to a spec that keeps its module names (so its state_dict
    loads as it is), recover blocks and repeats, check parameters and outputs on a fixed
    input, and write the spec; nothing is written unless the check passes."""
    from archspec.importer import ImportSourceError, import_source, parse_kwargs

    try:
        shape = tuple(int(v) for v in input.replace("x", ",").split(","))
    except ValueError:
        raise ImportSourceError(f"--input {input!r}: expected channels,height,width") from None
    imported = import_source(
        source, output, input_shape=shape, kwargs=parse_kwargs(kwargs), force=force
    )
    lines = imported.text.count("\n")
    out.print(
        f"wrote {output} ({lines} lines): {imported.params:,} parameters, outputs within "
        f"{imported.max_abs_diff:.1e} of {source}",
        highlight=False,
        markup=False,
    )
