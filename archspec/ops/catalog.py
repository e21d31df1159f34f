"""What `archspec ops` shows: every registered op with its fields (type, default) and its doc,
read off the op classes themselves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archspec.ops.base import REGISTRY, Example, Op, scalable_axis
from archspec.ops.plugins import get_op


@dataclass(frozen=True)
class FieldDoc:
    name: str
    type: str  # as a spec writer reads it: "int | [h, w]", "'same' | 'valid'"
    default: str  # "required" when there is none


@dataclass(frozen=True)
class OpDoc:
    name: str
    summary: str  # the first sentence of the class docstring
    doc: str
    fields: tuple[FieldDoc, ...]
    examples: tuple[Example, ...]

    def example_yaml(self, example: Example) -> str:
        """`{op: conv2d, kernel_size: 3}`, as written in a layers list."""
        params = "".join(f", {k}: {_yaml(v)}" for k, v in example.params.items())
        return f"{{op: {self.name}{params}}}"


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return str(value)


def _type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " | ".join(dict.fromkeys(_type(s) for s in schema["anyOf"]))
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        item = _type(schema.get("items", {}))
        if schema.get("minItems") == schema.get("maxItems") == 2:
            return "[h, w]"
        return f"list[{item}]"
    return {"integer": "int", "number": "float", "boolean": "bool", "string": "str"}.get(
        kind or "", "null" if kind == "null" else "any"
    )


def _summary(doc: str) -> str:
    first = " ".join(doc.split("\n\n")[0].split())
    end = first.find(". ")
    return first if end < 0 else first[: end + 1]


def describe(op: str | type[Op]) -> OpDoc:
    """The documentation of one op, by name or class; KeyError for an unknown name."""
    cls = get_op(op) if isinstance(op, str) else op
    properties = cls.model_json_schema().get("properties", {})
    fields = []
    for name, field in cls.model_fields.items():
        key = field.alias or name
        default = "required" if field.is_required() else _yaml(field.get_default())
        kind = _type(properties.get(key, {}))
        axis = scalable_axis(field)  # places `archspec scale` rewrites, named as block params
        if axis is not None and kind.startswith("int"):
            kind = {"width": "channels", "kernel": "kernel"}[axis] + kind[3:]
        fields.append(FieldDoc(key, kind, default))
    doc = " ".join((cls.__doc__ or "").split())
    return OpDoc(cls.op, _summary(doc), doc, tuple(fields), cls.examples)


def catalog() -> list[OpDoc]:
    """Every registered op, by name."""
    return [describe(cls) for _, cls in sorted(REGISTRY.items())]
