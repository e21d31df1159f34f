"""JSON Schema of the spec language, with one precise item schema per registered op."""

from __future__ import annotations

import copy
from typing import Any

from archspec.ops import REGISTRY
from archspec.spec.model import Item, ParamDef, Spec

_EXPRESSION = {"type": "string", "pattern": r"^\$", "description": "$name or ${expression}"}
_COMMON = ("name", "from", "when")


def spec_json_schema() -> dict[str, Any]:
    """The schema editors use to complete and check spec files."""
    schema = Spec.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    generic = defs["Item"]
    common = {k: generic["properties"][k] for k in _COMMON}
    variants: list[dict[str, Any]] = []
    for name, op in sorted(REGISTRY.items()):
        op_schema = op.model_json_schema()
        props = {k: {"anyOf": [v, _EXPRESSION]} for k, v in op_schema.get("properties", {}).items()}
        variants.append(
            {
                "type": "object",
                "title": f"op {name}",
                "description": (op.__doc__ or "").strip(),
                "properties": {"op": {"const": name}, **copy.deepcopy(common), **props},
                "required": ["op", *op_schema.get("required", [])],
                "additionalProperties": False,
            }
        )
        for sub in op_schema.get("$defs", {}).items():
            defs.setdefault(*sub)
    structural = {k: v for k, v in generic["properties"].items() if k != "op"}
    variants.append(
        {
            "type": "object",
            "title": "block instance or stage",
            "properties": {k: v for k, v in structural.items() if k != "layers"},
            "required": ["block"],
            "additionalProperties": False,
        }
    )
    variants.append(
        {
            "type": "object",
            "title": "group of layers",
            "properties": {
                k: v for k, v in structural.items() if k not in ("block", "args", "first")
            },
            "required": ["layers"],
            "additionalProperties": False,
        }
    )
    defs["Item"] = {"description": Item.__doc__, "anyOf": variants}
    shorthand = {
        "anyOf": [
            {"$ref": "#/$defs/ParamDef"},
            {"enum": list(ParamDef.model_fields["type"].annotation.__args__)},
        ]
    }
    for holder in (defs["BlockDef"]["properties"]["params"], schema["properties"]["options"]):
        holder["patternProperties"] = {k: shorthand for k in holder["patternProperties"]}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
