"""JSON Schema of the spec language, one precise item schema per registered op, chosen by
`op`, for editors and standard validators (search definitions: search/definition/schema.py)."""

from __future__ import annotations

import copy
from typing import Any

from archspec.ops import REGISTRY
from archspec.spec.model import Item, ParamDef, Spec

_EXPRESSION = {"type": "string", "pattern": r"^\$", "description": "$name or ${expression}"}
_COMMON = ("name", "from", "when")


def _or_expression(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema where an expression may stand for the value, and for each item of
    a list (`shape: [$n, "${h * w}", $channels]`)."""
    return {"anyOf": [_lists_of_expressions(schema), _EXPRESSION]}


def _lists_of_expressions(schema: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    if isinstance(schema.get("items"), dict):
        schema["items"] = _or_expression(schema["items"])
    if isinstance(schema.get("prefixItems"), list):
        schema["prefixItems"] = [_or_expression(item) for item in schema["prefixItems"]]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            schema[key] = [_lists_of_expressions(option) for option in schema[key]]
    return schema


def spec_json_schema() -> dict[str, Any]:
    """The schema editors use to complete and check spec files."""
    schema = Spec.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    generic = defs["Item"]
    common = {k: generic["properties"][k] for k in _COMMON}
    # Discriminated by `op` with if/then, so that a standard validator checks an item against
    # its own op only: a misspelt field is one error at that field, not one per op.
    branches: list[dict[str, Any]] = []
    for name, op in sorted(REGISTRY.items()):
        op_schema = op.model_json_schema()
        props = {k: _or_expression(v) for k, v in op_schema.get("properties", {}).items()}
        defs[f"op_{name}"] = {
            "type": "object",
            "title": f"op {name}",
            "description": (op.__doc__ or "").strip(),
            "properties": {"op": {"const": name}, **copy.deepcopy(common), **props},
            "required": ["op", *op_schema.get("required", [])],
            "additionalProperties": False,
        }
        branches.append(_when({"op": {"const": name}}, ["op"], f"op_{name}"))
        for sub in op_schema.get("$defs", {}).items():
            defs.setdefault(*sub)
    structural = {k: v for k, v in generic["properties"].items() if k != "op"}
    defs["block_item"] = {
        "type": "object",
        "title": "block instance or stage",
        "properties": {k: v for k, v in structural.items() if k != "layers"},
        "required": ["block"],
        "additionalProperties": False,
    }
    defs["layers_item"] = {
        "type": "object",
        "title": "group of layers",
        "properties": {k: v for k, v in structural.items() if k not in ("block", "args", "first")},
        "required": ["layers"],
        "additionalProperties": False,
    }
    branches.append(_when({}, ["block"], "block_item", without=["op"]))
    branches.append(_when({}, ["layers"], "layers_item", without=["op", "block"]))
    defs["Item"] = {
        "description": Item.__doc__,
        "type": "object",
        "properties": {"op": {"enum": sorted(REGISTRY)}},
        "anyOf": [{"required": ["op"]}, {"required": ["block"]}, {"required": ["layers"]}],
        "allOf": branches,
    }
    shorthand = {
        "anyOf": [
            {"$ref": "#/$defs/ParamDef"},
            {"enum": list(ParamDef.model_fields["type"].annotation.__args__)},
        ]
    }
    for holder in (defs["BlockDef"]["properties"]["params"], schema["properties"]["options"]):
        holder["patternProperties"] = {k: shorthand for k in holder["patternProperties"]}
    schema["properties"][EXTENDS["title"]] = EXTENDS
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _when(
    properties: dict[str, Any], required: list[str], ref: str, without: list[str] = ()
) -> dict[str, Any]:
    """if the item has `required` (and none of `without`) with `properties`, then `ref`."""
    condition: dict[str, Any] = {"required": required}
    if properties:
        condition["properties"] = properties
    if without:
        condition["not"] = {"anyOf": [{"required": [k]} for k in without]}
    return {"if": condition, "then": {"$ref": f"#/$defs/{ref}"}}


EXTENDS = {
    "title": "extends",
    "description": "a file or a list of files merged in first (relative to this file)",
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
}


def replace_refs(node: Any, ref: str, replacement: dict[str, Any]) -> None:
    """Every `{"$ref": ref}` under `node`, except inside `replacement` itself, made a copy of
    `replacement`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict) and value.get("$ref") == ref and len(value) == 1:
                node[key] = copy.deepcopy(replacement)
            else:
                replace_refs(value, ref, replacement)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, dict) and value.get("$ref") == ref and len(value) == 1:
                node[i] = copy.deepcopy(replacement)
            else:
                replace_refs(value, ref, replacement)
