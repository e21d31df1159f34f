"""The CLI's shared parts: the typer `app` every command module registers on, the consoles,
and how an error becomes one line and an exit code."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from archspec.errors import ArchspecError
from archspec.text import shown

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Declarative neural architectures: validate, inspect, build, scale, search, export.",
)
# A pipe or a file gets whole lines: tables are not cut to 80 columns. No markup, ever: file,
# class and study names are printed as they are, never read as [style] tags.
out = Console(width=None if sys.stdout.isatty() else 10_000, markup=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 10_000, markup=False)
_debug = {"on": False}
# typer's own ways out (exit codes, usage errors): passed through as they are
_CLI_EXITS = (typer.Exit, typer.Abort, typer.exceptions.TyperException)


def _version(value: bool) -> None:
    if value:
        from archspec import __version__

        typer.echo(f"archspec {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="On an error, show the Python traceback.")
    ] = False,
) -> None:
    _debug["on"] = debug


def print_problems(exc: ArchspecError) -> None:
    for problem in exc.problems:
        say(str(problem))


def say(text: str) -> None:
    """One line on stderr, control characters shown escaped (a message may quote a file or
    class name from outside)."""
    err.print(shown(text, limit=4000), markup=False, highlight=False, soft_wrap=True)


def describe_error(exc: BaseException) -> str | None:
    """One line for an error a user can cause (a file, a storage URL, memory), else None."""
    if isinstance(exc, OSError):
        where = str(exc.filename) if exc.filename is not None else ""
        why = exc.strerror or str(exc) or type(exc).__name__
        if isinstance(exc, FileExistsError) and Path(where).is_file():
            why = "is a file, not a folder"  # mkdir of a parent folder
        return f"{where}: {why}" if where else why
    if isinstance(exc, MemoryError):
        return "out of memory"
    module = type(exc).__module__.split(".")[0]
    if module in ("sqlalchemy", "optuna"):  # storage URLs and databases
        from archspec.search.study.heartbeat import storage_fault

        fault = storage_fault(exc, "")
        if fault is not None:
            return fault.message.replace("storage : ", "storage: ")
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"storage: {first}"
    return None


def fail(exc: BaseException) -> int:
    """Print `exc` as the CLI does and return the exit code."""
    if isinstance(exc, ArchspecError):
        print_problems(exc)
        return 1
    if isinstance(exc, KeyboardInterrupt):
        say("interrupted")
        return 130
    line = describe_error(exc)
    if line is None:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        line = (
            f"internal error: {type(exc).__name__}: {first} (a bug in archspec; "
            "run with --debug for the traceback)"
        )
    say(line)
    return 1


PLUGIN_HELP = (
    "Import MODULE first, to register the ops it defines (repeatable; also ARCHSPEC_PLUGINS, "
    "comma-separated). Installed packages' archspec.ops entry points load by themselves."
)
_PLUGIN = inspect.Parameter(
    "plugin",
    inspect.Parameter.KEYWORD_ONLY,
    default=None,
    annotation=Annotated[
        Optional[list[str]],  # noqa: UP045 - typer reads the annotation at run time
        typer.Option("--plugin", metavar="MODULE", help=PLUGIN_HELP, show_default=False),
    ],
)


def command(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Register a CLI command (`@command`, or `@command(name="import")` where the function
    cannot be called so): it takes `--plugin MODULE` (loaded before it runs, as pytest's -p);
    errors print as one line each (see `fail`), exit non-zero."""
    if fn is None:
        return lambda f: _command(f, name)
    return _command(fn, name)


def _command(fn: Callable[..., Any], name: str | None) -> Callable[..., Any]:

    @wraps(fn)
    def run(*args: Any, plugin: list[str] | None = None, **kwargs: Any) -> Any:
        try:
            from archspec.ops.plugins import load_plugins

            load_plugins(plugin or ())
            return fn(*args, **kwargs)
        except _CLI_EXITS:
            raise
        except (Exception, KeyboardInterrupt) as exc:
            if _debug["on"]:
                raise
            raise typer.Exit(fail(exc)) from None

    signature = inspect.signature(fn, eval_str=True)
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), _PLUGIN]
    )
    return app.command(name)(run)


@contextmanager
def kept(note: Callable[[], str]) -> Iterator[None]:
    """Steps after a finished search: on an error, print it and then `note()` (what is kept
    and where), exit 1; the finished work is never lost to a later step's failure."""
    try:
        yield
    except _CLI_EXITS:
        raise
    except (Exception, KeyboardInterrupt) as exc:
        if _debug["on"]:
            raise
        code = fail(exc)
        say(note())
        raise typer.Exit(code) from None
