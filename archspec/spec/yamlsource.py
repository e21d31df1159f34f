"""Safe, position-aware YAML reading: plain data plus the line and column of every value.

Only the YAML 1.2 core schema is understood (true/false, null, decimal ints, floats); YAML 1.1
surprises such as `no`, `on`, `010` or `1:30` stay strings so that validation rejects them with a
location instead of silently turning them into booleans or octal numbers. Aliases, explicit tags,
several documents, very deep nesting and huge numbers are refused.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from archspec.errors import Location, SpecSyntaxError

MAX_DEPTH = 64
MAX_NODES = 200_000
MAX_INT_DIGITS = 15
MAX_BYTES = 4 * 1024 * 1024

PathKey = tuple[str | int, ...]


class _CoreResolver(BaseResolver):
    """YAML 1.2 core schema resolution."""


_CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|(?:0|[1-9][0-9]*)\.[0-9]*)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?(?:0|[1-9][0-9]*)[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


class _Loader(Reader, Scanner, Parser, Composer, _CoreResolver):
    def __init__(self, stream: str):
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _CoreResolver.__init__(self)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise SpecSyntaxError(
                "YAML aliases (*name) are not supported; define a block and reuse it instead",
                _loc(self.name, event.start_mark),
            )
        return super().compose_node(parent, index)


_STANDARD_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "seq", "map")
}


def _loc(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


@dataclass
class Source:
    """Plain data read from YAML, with the location of each value (and of each mapping key)."""

    data: Any
    file: str = "<spec>"
    values: dict[PathKey, Location] = field(default_factory=dict)
    keys: dict[PathKey, Location] = field(default_factory=dict)

    def locate(self, path: PathKey, key: bool = False) -> Location:
        """Location of `path`, or of its nearest existing ancestor."""
        path = tuple(path)
        while True:
            table = self.keys if key and path in self.keys else self.values
            if path in table:
                return table[path]
            if not path:
                return Location(self.file, 1, 1)
            path = path[:-1]
            key = False


def read_text(source: str | Path) -> tuple[str, str]:
    """(text, file name) from a path or from YAML text itself."""
    if isinstance(source, Path) or (
        isinstance(source, str)
        and "\n" not in source
        and (source.lower().endswith((".yaml", ".yml")) or os.path.isfile(source))
    ):
        path = Path(source)
        return _decode(read_bounded(path, "spec"), str(path)), str(path)
    return source, "<spec>"


def read_bounded(path: Path, what: str, limit: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; never reads more than that (a
    FIFO, a device such as /dev/zero or a huge file is refused, not read)."""
    where = Location(str(path))
    try:  # non-blocking: opening a FIFO must not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise SpecSyntaxError(f"cannot read {what}: {exc.strerror}", where) from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "is a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise SpecSyntaxError(f"cannot read {what}: {kind}", where)
    with os.fdopen(fd, "rb", buffering=0) as stream:
        try:
            raw = stream.read(limit + 1)
        except OSError as exc:
            raise SpecSyntaxError(f"cannot read {what}: {exc.strerror}", where) from exc
    if len(raw) > limit:
        raise SpecSyntaxError(f"file is over {limit} bytes; {what}s are limited to {limit}", where)
    return raw


def _decode(raw: bytes, file: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise SpecSyntaxError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); a spec must be a UTF-8 YAML file",
            Location(file, line, column),
        ) from exc


_UNCLOSED = ("while parsing a flow", "while scanning a quoted scalar")


def load_yaml(text: str, file: str = "<spec>") -> Source:
    """Parse one YAML document safely into a Source."""
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        raise SpecSyntaxError(
            f"YAML syntax: {exc.reason}", _position(text, file, exc.position)
        ) from exc
    loader.name = file
    try:
        node = loader.get_single_node()
    except SpecSyntaxError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or "invalid YAML"
        if exc.context and "single document" in exc.context:
            what = "a spec file holds one YAML document; found a second one (---)"
        opened = exc.context_mark
        if opened is not None and exc.context and exc.context.startswith(_UNCLOSED):
            # report the bracket or quote that is never closed, not where the parser gave up
            opener = text[opened.index] if opened.index < len(text) else "?"
            closer = {"[": "]", "{": "}"}.get(opener, opener)
            later = f" at line {mark.line + 1}" if mark is not None else ""
            what = f"this {opener} is never closed by a {closer} ({what}{later})"
            mark = opened
        raise SpecSyntaxError(
            f"YAML syntax: {what}", _loc(file, mark) if mark else Location(file)
        ) from exc
    except yaml.reader.ReaderError as exc:
        raise SpecSyntaxError(
            f"YAML syntax: {exc.reason}", _position(text, file, exc.position)
        ) from exc
    except yaml.YAMLError as exc:
        raise SpecSyntaxError(f"YAML syntax: {exc}", Location(file)) from exc
    except RecursionError as exc:
        raise SpecSyntaxError(f"nesting deeper than {MAX_DEPTH} levels", Location(file)) from exc
    finally:
        loader.dispose()
    source = Source(None, file)
    if node is None:
        raise SpecSyntaxError("the spec is empty", Location(file, 1, 1))
    counter = [0]
    source.data = _convert(node, (), source, counter)
    return source


def _position(text: str, file: str, offset: int) -> Location:
    before = text[:offset]
    return Location(file, before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1)


def _convert(node: yaml.Node, path: PathKey, source: Source, counter: list[int]) -> Any:
    loc = _loc(source.file, node.start_mark)
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise SpecSyntaxError(f"more than {MAX_NODES} YAML nodes", loc)
    if len(path) > MAX_DEPTH:
        raise SpecSyntaxError(f"nesting deeper than {MAX_DEPTH} levels", loc)
    if node.tag not in _STANDARD_TAGS:
        raise SpecSyntaxError(f"YAML tag {node.tag!r} is not allowed in a spec", loc)
    source.values[path] = loc
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_loc = _loc(source.file, key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                raise SpecSyntaxError("mapping keys must be plain names", key_loc)
            key = key_node.value
            if key in out:
                first = source.keys[path + (key,)]
                raise SpecSyntaxError(
                    f"duplicate key {key!r} (first defined at line {first.line})", key_loc
                )
            source.keys[path + (key,)] = key_loc
            out[key] = _convert(value_node, path + (key,), source, counter)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), source, counter) for i, item in enumerate(node.value)]
    return _scalar(node, loc)


def _scalar(node: yaml.ScalarNode, loc: Location) -> Any:
    tag, text = node.tag, node.value
    if tag.endswith(":str"):
        return text
    if tag.endswith(":null"):
        return None
    if tag.endswith(":bool"):
        return text.lower() == "true"
    if tag.endswith(":int"):
        if len(text.lstrip("+-")) > MAX_INT_DIGITS:
            raise SpecSyntaxError(f"integer {text[:20]}... is too large", loc)
        return int(text)
    value = float(
        text.replace(".inf", "inf")
        .replace(".Inf", "inf")
        .replace(".INF", "inf")
        .replace(".nan", "nan")
        .replace(".NaN", "nan")
        .replace(".NAN", "nan")
    )
    if not math.isfinite(value):
        raise SpecSyntaxError(f"{text} is not a finite number", loc)
    return value
