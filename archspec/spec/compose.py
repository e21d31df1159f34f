"""Composing YAML before validation, for specs and search definitions alike: `extends:` (a file or
a list of files, relative to the file naming them, deep-merged in order, the file's own keys
last; mappings merge key by key, anything else is replaced whole) and `KEY=VALUE` overrides from
the command line (a dotted key, a YAML 1.2 scalar or a `[a, b]` list), applied last. Every value
keeps the location of whoever wrote it: a file's line and column, or `override KEY=VALUE`, so a
validation error points into the file, or at the override, that wrote the bad value."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archspec.errors import Location, SpecSyntaxError
from archspec.spec.yamlsource import PathKey, Source, load_yaml, read_text

MAX_EXTENDS_DEPTH = 8  # a file extending a file extending ... at most this deep
MAX_EXTENDS_FILES = 64  # files read for one composition, all levels together
KEY = "extends"


def load_composed(source: str | Path) -> Source:
    """The YAML at `source` (a path, or YAML text) with its `extends:` chain merged in."""
    text, file = read_text(source)
    return _compose(load_yaml(text, file), (), [0])


def _compose(src: Source, chain: tuple[Path, ...], count: list[int]) -> Source:
    data = src.data
    if not isinstance(data, dict) or KEY not in data:
        return src
    parents = data[KEY]
    where = src.locate((KEY,))
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) and p for p in parents):
        raise SpecSyntaxError("extends: a file name or a list of file names", where)
    here = Path(src.file).resolve() if src.file != "<spec>" else Path.cwd() / "<spec>"
    chain = (*chain, here)
    if len(chain) > MAX_EXTENDS_DEPTH:
        names = " -> ".join(p.name for p in chain)
        raise SpecSyntaxError(f"extends: deeper than {MAX_EXTENDS_DEPTH} files ({names})", where)
    merged = Source({}, src.file)
    for i, name in enumerate(parents):
        at = src.locate((KEY, i)) if isinstance(data[KEY], list) else where
        path = (here.parent / name).resolve()
        if path in chain:
            cycle = " -> ".join(p.name for p in (*chain[chain.index(path) :], path))
            raise SpecSyntaxError(f"extends: {name!r} extends itself ({cycle})", at)
        if not path.is_file():
            raise SpecSyntaxError(f"extends: no file {name!r} (looked for {path})", at)
        count[0] += 1
        if count[0] > MAX_EXTENDS_FILES:
            raise SpecSyntaxError(f"extends: more than {MAX_EXTENDS_FILES} files in all", at)
        text, file = read_text(path)
        parent = _compose(load_yaml(text, file), chain, count)
        if not isinstance(parent.data, dict):
            raise SpecSyntaxError(f"extends: {name!r} is not a mapping", at)
        merged = merge(merged, parent)
    own = Source(
        {k: v for k, v in data.items() if k != KEY},
        src.file,
        {p: loc for p, loc in src.values.items() if p[:1] != (KEY,)},
        {p: loc for p, loc in src.keys.items() if p[:1] != (KEY,)},
    )
    return merge(merged, own)


def merge(base: Source, top: Source) -> Source:
    """`top` over `base`: mappings merged key by key, any other value of `top` replaces
    `base`'s whole. Each value keeps the location of the source it came from."""
    data = _merge(base.data, top.data)
    out = Source(data, top.file)
    for path, _ in walk(data):
        for table, theirs, ours in (
            (out.values, top.values, base.values),
            (out.keys, top.keys, base.keys),
        ):
            if path in theirs:
                table[path] = theirs[path]
            elif path in ours:
                table[path] = ours[path]
    return out


def _merge(base: Any, top: Any) -> Any:
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for key, value in top.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return top


def walk(data: Any, path: PathKey = ()) -> list[tuple[PathKey, Any]]:
    out = [(path, data)]
    if isinstance(data, dict):
        for key, value in data.items():
            out += walk(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += walk(value, (*path, i))
    return out


def apply_overrides(src: Source, overrides: Sequence[str]) -> Source:
    """`src` with each `KEY=VALUE` set, in order (later ones win)."""
    for text in overrides:
        where = Location(f"override {text}")
        key, sep, value = text.partition("=")
        path = tuple(int(p) if p.isdigit() else p for p in key.strip().split("."))
        if not sep or not all(str(p) for p in path):
            raise SpecSyntaxError("expected KEY=VALUE with a dotted key (training.epochs=3)", where)
        try:
            parsed = load_yaml(value, f"override {text}").data if value.strip() else ""
        except SpecSyntaxError as exc:  # located in the value: name the override alone
            raise SpecSyntaxError(exc.problems[0].message, where) from None
        if not isinstance(src.data, dict):
            raise SpecSyntaxError("the file is not a mapping: nothing to override", where)
        node: Any = src.data
        for depth, step in enumerate(path[:-1]):
            shown = ".".join(str(p) for p in path[: depth + 1])
            if isinstance(node, dict):
                if not isinstance(step, str):
                    raise SpecSyntaxError(f"{shown}: a section has names, not numbers", where)
                if node.get(step) is None:  # a new section, or `section:` left empty
                    node[step] = {}
                    src.values[path[: depth + 1]] = src.keys[path[: depth + 1]] = where
                node = node[step]
            elif isinstance(node, list):
                if not isinstance(step, int) or step >= len(node):
                    raise SpecSyntaxError(f"{shown}: the list has {len(node)} items", where)
                node = node[step]
            else:
                raise SpecSyntaxError(f"{shown}: is a value ({node!r}), not a section", where)
        last = path[-1]
        if isinstance(node, dict) and isinstance(last, str):
            node[last] = parsed
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = parsed
        else:
            raise SpecSyntaxError(f"{key}: cannot be set here", where)
        for table in (src.values, src.keys):
            for p in [p for p in table if p[: len(path)] == path]:
                del table[p]
        for sub, _ in walk(parsed, path):
            src.values[sub] = where
            src.keys[sub] = where
    return src
