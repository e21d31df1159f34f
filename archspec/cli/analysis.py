"""Commands about analysis: lint, graph."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from archspec.cli.app import command, err, out, print_problems
from archspec.errors import ArchspecError


@command
def lint(
    specs: Annotated[list[str] | None, typer.Argument(help="spec files or zoo names")] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="fail on info findings too (for CI)")
    ] = False,
    ignore: Annotated[
        list[str] | None, typer.Option(help="a rule code to skip (repeatable, or comma-separated)")
    ] = None,
    rules: Annotated[bool, typer.Option("--rules", help="list the rules and exit")] = False,
) -> None:
    """Find classic CNN pitfalls; one `file:line:col: CODE message` line per finding.

    Exit 0: no warnings (info findings are printed but pass).

    Exit 1: a warning; with --strict, any finding (warning or info).

    Exit 2: a spec does not build (its errors are printed as by `validate`).
    """
    from archspec.analysis.lint import lint as run_lint
    from archspec.analysis.lint import rule_table
    from archspec.zoo import spec_path

    if rules:
        table = Table("code", "name", "severity", "what it finds", title="archspec lint rules")
        for row in rule_table():
            table.add_row(*row)
        out.print(table)
        return
    if not specs:
        raise ArchspecError("give one or more specs to lint (or --rules)")
    skip = [code.strip().upper() for item in ignore or [] for code in item.split(",") if code]
    unknown = sorted(set(skip) - {code for code, *_ in rule_table()})
    if unknown:
        raise ArchspecError(f"--ignore: unknown rule code(s) {', '.join(unknown)}; see --rules")
    failing, broken, total = 0, False, 0
    for name in specs:
        try:
            findings = run_lint(spec_path(name), ignore=skip)
        except ArchspecError as exc:
            broken = True
            print_problems(exc)
            continue
        for finding in findings:
            out.print(str(finding), markup=False, highlight=False, soft_wrap=True)
        total += len(findings)
        failing += sum(1 for f in findings if strict or f.severity == "warning")
    if broken:
        raise typer.Exit(2)
    if total == 0:
        err.print("lint: no findings", highlight=False)
    if failing:
        raise typer.Exit(1)


@command
def graph(
    spec: Annotated[str, typer.Argument(help="a spec file, or the name of a zoo model")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="file to write: .dot, .mmd, .svg or .png")
    ],
    collapse: Annotated[
        str,
        typer.Option(
            help="block: one box per block instance, identical repeats merged; "
            "stage: one box per stage; none: one box per op"
        ),
    ] = "block",
    engine: Annotated[
        str,
        typer.Option(help="for .svg/.png: auto (graphviz if installed), graphviz or builtin"),
    ] = "auto",
) -> None:
    """Draw the architecture: each box shows the op (or block) and its output shape."""
    from archspec.analysis.draw import draw
    from archspec.zoo import spec_path

    path = draw(spec_path(spec), output, collapse_level=collapse, engine=engine)
    err.print(f"wrote {path}", highlight=False)
