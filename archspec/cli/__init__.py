"""The `archspec` command. Each module here registers its commands on `app`; all of them are
thin wrappers over the public API. Any error becomes one line per problem on stderr and a
non-zero exit (1; 130 when interrupted); `archspec --debug CMD` shows the traceback instead."""

from archspec.cli.app import app, command, err, fail, out

__all__ = ["app", "command", "err", "fail", "main", "out"]


def main() -> None:
    from archspec.cli import (  # noqa: F401 - registers the commands
        analysis,
        export,
        importer,
        search,
        spec,
        train,
    )

    app()
