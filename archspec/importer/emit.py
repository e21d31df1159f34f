"""The item tree as spec YAML in the zoo's style: one op per line in flow style, groups and
blocks as block-style mappings."""

from __future__ import annotations

import json
import re
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z_][\w\-]*$")
_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if ("." in text or "e" in text) else text + ".0"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {scalar(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if text.startswith("$") and not text.startswith("${"):
        return text
    if _PLAIN.match(text) and text.lower() not in _WORDS:
        return text
    return json.dumps(text)


def key(name: str) -> str:
    return name if _PLAIN.match(name) and name.lower() not in _WORDS else json.dumps(name)


def flow(item: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{key(k)}: {scalar(v)}" for k, v in item.items()) + "}"


def name_value(name: str) -> str:
    return json.dumps(name) if name.isdigit() else scalar(name)
