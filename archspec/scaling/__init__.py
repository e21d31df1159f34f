"""Compound scaling as a spec -> spec rewrite: the rounding rules (`rules`), the rewrite of a
spec's literal depths, widths, input size and kernels (`rewrite`), and what a scaled network
actually has relative to its base (`measured`).

The rules sit below the spec language (its expressions call `make_divisible`), the rewrite and
`effective` above the graph and the analysis; so the names are imported on first use (PEP 562,
as `archspec` does), and `import archspec.scaling.rules` loads nothing else."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archspec.scaling.measured import Effective, effective
    from archspec.scaling.rewrite import apply_preset, scale
    from archspec.scaling.rules import (
        DEPTH_RULES,
        DepthRule,
        make_divisible,
        scale_depth,
        scale_size,
    )

_LAZY = {
    "Effective": "archspec.scaling.measured",
    "effective": "archspec.scaling.measured",
    "apply_preset": "archspec.scaling.rewrite",
    "scale": "archspec.scaling.rewrite",
    "DEPTH_RULES": "archspec.scaling.rules",
    "DepthRule": "archspec.scaling.rules",
    "make_divisible": "archspec.scaling.rules",
    "scale_depth": "archspec.scaling.rules",
    "scale_size": "archspec.scaling.rules",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'archspec.scaling' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DEPTH_RULES",
    "DepthRule",
    "Effective",
    "apply_preset",
    "effective",
    "make_divisible",
    "scale",
    "scale_depth",
    "scale_size",
]
