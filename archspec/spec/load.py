"""From a file or text to a validated Spec, with every problem located at file:line:column."""

from __future__ import annotations

import difflib
import functools
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel, TypeAdapter, ValidationError

from archspec.errors import ArchspecError, Problem, SpecValidationError
from archspec.ops import get_op
from archspec.spec.compose import apply_overrides, load_composed
from archspec.spec.expr import has_expression
from archspec.spec.limits import check_structure
from archspec.spec.model import PATTERN_WORDS, Item, Spec
from archspec.spec.yamlsource import PathKey, Source

M = TypeVar("M", bound=BaseModel)


def load_spec(source: str | Path | Spec, overrides: Sequence[str] = ()) -> Spec:
    """Read and validate a spec from a path or from YAML text (its `extends:` files merged
    in, `KEY=VALUE` overrides applied), or pass a Spec through."""
    if isinstance(source, Spec):
        if overrides:
            raise SpecValidationError("overrides apply to a spec file or text, not a Spec")
        return source
    return spec_from_source(apply_overrides(load_composed(source), overrides))


def validate_source(source: Source, model: type[M], error: type[ArchspecError], what: str) -> M:
    """`model` validated from YAML data; every problem raised as `error`, located."""
    if not isinstance(source.data, dict):
        raise error(f"{what}; got {type(source.data).__name__}", source.locate(()))
    try:
        return model.model_validate(source.data)
    except ValidationError as exc:
        raise error(pydantic_problems(exc, source, model)) from exc


def spec_from_source(source: Source) -> Spec:
    spec = validate_source(
        source, Spec, SpecValidationError, "a spec is a mapping with name, input and layers"
    )
    spec._source = source
    problems = list(_op_param_problems(spec))
    if problems:
        raise SpecValidationError(problems)
    check_structure(spec)  # blocks that use themselves, nesting that would recurse
    return spec


def pydantic_problems(
    exc: ValidationError, source: Source, root: type[BaseModel], prefix: PathKey = ()
) -> list[Problem]:
    """One located problem per place, union alternatives merged into one message."""
    grouped: dict[PathKey, list[dict[str, Any]]] = {}
    for error in exc.errors():
        loc = prefix + tuple(error["loc"])
        path = _existing(loc, source)
        if error["type"] == "extra_forbidden":
            path = loc
        grouped.setdefault(path, []).append(error)
    problems = []
    # a misspelt key also makes a required one "missing": report the misspelling first
    order = sorted(grouped.items(), key=lambda kv: kv[1][0]["type"] == "missing")
    for path, errors in order:
        first = errors[0]
        dotted = ".".join(str(p) for p in path) or "spec"
        if first["type"] == "extra_forbidden":
            message = f"{dotted}: {unknown_key(path, source, root)}"
            location = source.locate(path, key=True)
        elif first["type"] == "missing":
            missing = ".".join(str(p) for p in prefix + tuple(first["loc"]))
            message = f"{missing}: required field is missing"
            location = source.locate(path)
        else:
            expected = "; or ".join(dict.fromkeys(_message(e) for e in errors))
            got = _short(first.get("input"))
            message = f"{dotted}: {expected} (got {got})"
            location = source.locate(path)
        problems.append(Problem(location, message))
    return problems


def _message(error: dict[str, Any]) -> str:
    pattern = (error.get("ctx") or {}).get("pattern")
    if error["type"] == "string_pattern_mismatch" and pattern in PATTERN_WORDS:
        return f"expected {PATTERN_WORDS[pattern]}"
    msg = error["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg[0].lower() + msg[1:] if msg else msg


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _existing(loc: PathKey, source: Source) -> PathKey:
    """The longest prefix of a pydantic location that names a real place in the YAML."""
    path: PathKey = ()
    for part in loc:
        candidate = path + (part,)
        if candidate not in source.values:
            if isinstance(part, str) and not part.isidentifier():
                continue  # union tags such as 'list[str]' or 'function-after[...]'
            break
        path = candidate
    return path


def unknown_key(path: PathKey, source: Source, root: type[BaseModel]) -> str:
    key = path[-1]
    allowed = _allowed_keys(path[:-1], source, root)
    near = difflib.get_close_matches(str(key), allowed, n=3, cutoff=0.6)
    if near:
        return f"unknown key {key!r}; did you mean {', '.join(near)}?"
    return f"unknown key {key!r}; expected one of: {', '.join(sorted(allowed))}"


def _allowed_keys(path: PathKey, source: Source, root: type[BaseModel]) -> list[str]:
    node: Any = root
    data: Any = source.data
    for part in path:
        node = _unwrap(node, part)
        data = data[part] if isinstance(data, (dict, list)) else None
    model = _model_in(node)
    if model is None:
        return []
    keys = [f.alias or name for name, f in model.model_fields.items()]
    if model is Item and isinstance(data, dict) and isinstance(data.get("op"), str):
        try:
            keys += list(get_op(data["op"]).model_fields)
        except KeyError:
            pass
    return keys


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _unwrap(node: Any, part: Any) -> Any:
    """The annotation one step below `node` along a path segment."""
    model = _model_in(node)
    origin = typing.get_origin(node)
    if isinstance(part, str) and model is not None and origin not in (list, dict):
        for name, field in model.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(node):
            if typing.get_origin(arg) in (list, dict):
                return _unwrap(arg, part)
        return _unwrap(typing.get_args(node)[0], part)
    if origin is list:
        return typing.get_args(node)[0]
    if origin is dict:
        return typing.get_args(node)[1]
    return None


def iter_items(spec: Spec) -> typing.Iterator[tuple[PathKey, Item]]:
    """Every item in the spec, with its path, blocks included."""
    stack: list[tuple[PathKey, list[Item]]] = [(("layers",), spec.layers)]
    stack += [(("blocks", name, "layers"), b.layers) for name, b in spec.blocks.items()]
    while stack:
        base, items = stack.pop(0)
        for i, item in enumerate(items):
            yield base + (i,), item
            if item.layers is not None:
                stack.append((base + (i, "layers"), item.layers))


def _op_param_problems(spec: Spec) -> typing.Iterator[Problem]:
    """Unknown op parameters and ill-typed literal values, checked before any expansion."""
    for path, item in iter_items(spec):
        if item.op is None:
            continue
        op = get_op(item.op)
        for key, value in item.params.items():
            if key not in op.model_fields:
                near = difflib.get_close_matches(key, list(op.model_fields), n=3, cutoff=0.6)
                hint = (
                    f"did you mean {', '.join(near)}?"
                    if near
                    else ("parameters: " + (", ".join(op.model_fields) or "none"))
                )
                yield Problem(
                    spec.locate(path + (key,), key=True),
                    f"{item.op} has no parameter {key!r}; {hint}",
                )
            elif not has_expression(value):
                try:
                    field_adapter(item.op, key).validate_python({key: value}, strict=True)
                except ValidationError as exc:
                    yield Problem(
                        spec.locate(path + (key,)),
                        f"{item.op}.{key}: "
                        + "; or ".join(dict.fromkeys(_message(e) for e in exc.errors()))
                        + f" (got {_short(value)})",
                    )


@functools.cache
def field_adapter(op: str, field: str) -> TypeAdapter:
    """Validates `{field: value}` as that op field alone (validators see the field's name)."""
    info = get_op(op).model_fields[field]
    return TypeAdapter(pydantic.create_model(f"{op}.{field}", **{field: (info.annotation, info)}))
