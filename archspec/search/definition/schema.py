"""JSON Schema of search definitions (`archspec schema search`), for editors and standard
validators: pydantic's schema of SearchDef with the shorthands the loader also takes."""

from __future__ import annotations

from typing import Any

from archspec.search.definition.model import SearchDef
from archspec.search.definition.samplers import PRUNERS, SAMPLERS
from archspec.spec.schema import EXTENDS, replace_refs


def search_json_schema() -> dict[str, Any]:
    """The schema of search definitions (`search/*.yaml`), with the shorthands the loader
    takes: `sampler: tpe`, `pruner: median`, a range as `[low, high]`, an objective as its
    metric."""
    schema = SearchDef.model_json_schema()
    defs = schema["$defs"]
    for field, table in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
        defs[field.title()]["properties"]["name"] = {"enum": sorted(table)}
        schema["properties"][field] = {
            "anyOf": [{"enum": sorted(table)}, {"$ref": f"#/$defs/{field.title()}"}],
            "description": defs[field.title()].get("description", ""),
        }
    metrics = defs["Objective"]["properties"]["metric"]
    replace_refs(schema, "#/$defs/Objective", {"anyOf": [{"$ref": "#/$defs/Objective"}, metrics]})
    pair = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
    replace_refs(schema, "#/$defs/Range", {"anyOf": [{"$ref": "#/$defs/Range"}, pair]})
    schema["properties"][EXTENDS["title"]] = EXTENDS
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
