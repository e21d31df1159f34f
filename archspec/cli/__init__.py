"""The `archspec` command. Each module here registers its commands on `app`; all of them are
thin wrappers over the public API, and an ArchspecError becomes one line per problem, exit 1."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import typer
from rich.console import Console

from archspec.errors import ArchspecError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Declarative neural architectures: validate, inspect, build, scale, search, export.",
)
out = Console()
err = Console(stderr=True)


def print_problems(exc: ArchspecError) -> None:
    for problem in exc.problems:
        err.print(str(problem), markup=False, highlight=False, soft_wrap=True)


def command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Register a CLI command whose ArchspecErrors print as located lines, exit 1."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ArchspecError as exc:
            print_problems(exc)
            raise typer.Exit(1) from None

    return app.command()(run)


def main() -> None:
    from archspec.cli import analysis, search, spec, train  # noqa: F401 - registers the commands

    app()
