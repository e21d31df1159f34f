"""Commands about specs: validate, summary, schema, zoo, ops."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from archspec.cli.app import command, out, print_problems
from archspec.errors import ArchspecError

SpecArg = Annotated[str, typer.Argument(help="a spec file, or the name of a zoo model")]


@command
def validate(specs: Annotated[list[str], typer.Argument(help="spec files or zoo names")]) -> None:
    """Check specs end to end (syntax, schema, graph, shapes); exit 1 on any problem."""
    from archspec.graph import build_graph
    from archspec.zoo import spec_path

    failed = False
    for name in specs:
        try:
            graph = build_graph(spec_path(name))
        except ArchspecError as exc:
            failed = True
            print_problems(exc)
            continue
        out.print(f"ok  {name}  ({len(graph)} nodes)", highlight=False)
    if failed:
        raise typer.Exit(1)


@command
def summary(
    spec: SpecArg,
    scale: Annotated[str | None, typer.Option(help="apply one of the spec's scale presets")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or markdown")] = "table",
    batch: Annotated[int, typer.Option(min=1, help="batch size for activation memory")] = 1,
    stages: Annotated[bool, typer.Option("--stages", help="stage subtotals only")] = False,
    outputs: Annotated[
        str | None,
        typer.Option(help="comma-separated layers to stop at (a backbone: layer2,layer3)"),
    ] = None,
) -> None:
    """Per-node table: op, output shape, params, FLOPs, memory, receptive field; a subtotal
    per stage (a top-level name such as layer3); totals."""
    from archspec.analysis.summary import render_summary

    names = [n.strip() for n in outputs.split(",") if n.strip()] if outputs is not None else None
    text = render_summary(
        spec, scale=scale, fmt=fmt, batch=batch, stages_only=stages, outputs=names, console=out
    )
    if text is not None:
        sys.stdout.write(text)


@command
def schema(
    kind: Annotated[
        str, typer.Argument(help="spec (default) or search: which files the schema checks")
    ] = "spec",
) -> None:
    """Print the JSON Schema of specs or of search definitions (for yaml-language-server,
    editors and validators such as check-jsonschema)."""
    if kind == "spec":
        from archspec.spec.schema import spec_json_schema as make
    elif kind == "search":
        from archspec.search.definition.schema import search_json_schema as make
    else:
        raise typer.BadParameter(f"spec or search; got {kind!r}")
    sys.stdout.write(json.dumps(make(), indent=2) + "\n")


@command
def zoo() -> None:
    """List the shipped architectures with their parameters and FLOPs."""
    from archspec.analysis import analyze
    from archspec.zoo import list_specs, spec_path

    table = Table("model", "params", "GFLOPs", "input", title="archspec zoo")
    for name in list_specs():
        report = analyze(spec_path(name))
        shape = report.input_shape
        table.add_row(name, f"{report.params:,}", f"{report.flops / 1e9:.2f}", str(shape))
    out.print(table)


@command
def ops(
    name: Annotated[str | None, typer.Argument(help="one op, e.g. conv2d")] = None,
) -> None:
    """List the ops a spec can use, with their fields (type, default) and what they do;
    `archspec ops conv2d` for one op in full, with examples."""
    from archspec.errors import SpecError
    from archspec.ops.catalog import catalog, describe
    from archspec.ops.plugins import ORIGINS, origin

    if name is None:
        columns = ["op", "fields (name=default)", "what it does"]
        if ORIGINS:  # plugin ops loaded: say where each op comes from
            columns.append("from")
        table = Table(*columns, title="archspec ops")
        for doc in catalog():
            fields = ", ".join(
                f.name if f.default == "required" else f"{f.name}={f.default}" for f in doc.fields
            )
            row = [doc.name, fields, doc.summary]  # no markup: [h, w] stays as it is
            table.add_row(*row, *([origin(doc.name)] if ORIGINS else []))
        out.print(table)
        return
    try:
        doc = describe(name)
    except KeyError as exc:
        raise SpecError(exc.args[0]) from None
    out.print(f"{doc.name}: {doc.doc}", markup=False, highlight=False)
    if doc.name in ORIGINS:
        out.print(f"from plugin {origin(doc.name)}", markup=False, highlight=False)
    if doc.fields:
        table = Table("field", "type", "default")
        for f in doc.fields:
            table.add_row(f.name, f.type, f.default)
        out.print(table)
    else:
        out.print("no fields")
    out.print("examples:")
    for example in doc.examples:
        shapes = ", ".join(f"{s.layout} {s}" for s in example.inputs)
        line = f"  - {doc.example_yaml(example)}  # input {shapes}"
        out.print(line, markup=False, highlight=False, soft_wrap=True)
