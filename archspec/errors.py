"""The one exception hierarchy of archspec; every error carries where in the spec it comes from.
Also the did-you-mean helper every unknown-name message uses."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Location:
    """A position in a spec file: 1-based line and column, as editors count."""

    file: str = ""
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}:{self.column or 1}"


@dataclass(frozen=True)
class Problem:
    """One located problem: `file:line:col: message`."""

    location: Location
    message: str

    def __str__(self) -> str:
        where = str(self.location)
        return f"{where}: {self.message}" if where else self.message


class ArchspecError(Exception):
    """Base of every error archspec raises on purpose; anything else is a bug."""

    def __init__(self, problems: list[Problem] | str, location: Location | None = None):
        if isinstance(problems, str):
            problems = [Problem(location or Location(), problems)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @property
    def location(self) -> Location:
        return self.problems[0].location

    @property
    def file(self) -> str:
        return self.location.file

    @property
    def line(self) -> int | None:
        return self.location.line

    @property
    def column(self) -> int | None:
        return self.location.column

    @property
    def message(self) -> str:
        return self.problems[0].message


class SpecError(ArchspecError):
    """Anything wrong with a spec, found before a tensor exists."""


class SpecSyntaxError(SpecError):
    """The file is not acceptable YAML (or not text at all)."""


class SpecValidationError(SpecError):
    """The YAML is fine but does not describe a valid spec."""


class GraphError(SpecError):
    """The spec expands into a graph that is not a valid network: cycles, dangling refs, shapes."""


class LimitError(SpecError):
    """A valid spec that expands beyond a limit of the expansion budget (nodes, parameters,
    activation memory); the message names the figure, the limit and how to raise it."""


class ScaleError(ArchspecError):
    """A scaling request that cannot be applied to a spec."""


class SearchError(ArchspecError):
    """A search definition or a study that cannot be run."""


class ExportError(ArchspecError):
    """An export that cannot be written."""


class BundleError(ArchspecError):
    """A model bundle that cannot be written or loaded as it is."""


class ImageError(ArchspecError):
    """An image that cannot be read or prepared as a model input."""


def unknown_message(kind: str, name: Any, known: Any) -> str:
    """`unknown op 'conv'; did you mean conv2d?`, or the known names when none is close."""
    near = difflib.get_close_matches(str(name), list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(near)}?" if near else f"; known: {', '.join(sorted(known))}"
    return f"unknown {kind} {name!r}{hint}"
