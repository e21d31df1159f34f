"""Spec -> YAML text that loads back to the same Spec; files are written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from archspec.spec.model import Spec
from archspec.text import shown


class _Dumper(yaml.SafeDumper):
    pass


def _is_flat(value: Any) -> bool:
    if isinstance(value, dict):
        return all(not isinstance(v, (dict, list)) or _is_flat(v) for v in value.values()) and (
            len(value) <= 12
        )
    if isinstance(value, list):
        return all(not isinstance(v, (dict, list)) for v in value)
    return True


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    flow = _is_flat(data) and any(not isinstance(v, (dict, list)) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)


def spec_data(spec: Spec) -> dict[str, Any]:
    """The spec as plain data, only what was written (defaults left out)."""
    return spec.model_dump(mode="python", by_alias=True, exclude_unset=True)


def dump_spec(spec: Spec, header: str | None = None) -> str:
    text = yaml.dump(
        spec_data(spec), Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True
    )
    if header:
        text = "".join(f"# {shown(line, 10_000)}\n" for line in header.splitlines()) + text
    return text


def write_text_atomic(path: str | Path, text: str | bytes) -> Path:
    """Write via a temporary file in the same folder, so a failure leaves nothing behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode() if isinstance(text, str) else text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; an exported spec is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
