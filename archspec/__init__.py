"""archspec: declarative neural architectures, compiled to PyTorch and searched with Optuna.
Public names are imported on first use (PEP 562), so `import archspec` and `archspec validate`
load only what they use, never torch."""

from typing import TYPE_CHECKING, Any

from archspec.errors import (
    ArchspecError,
    BundleError,
    ExportError,
    GraphError,
    ScaleError,
    SearchError,
    SpecError,
    SpecSyntaxError,
    SpecValidationError,
)

if TYPE_CHECKING:
    from archspec.analysis import analyze
    from archspec.bundle import Bundle, load_bundle, save_bundle
    from archspec.compile import build, compile_graph
    from archspec.graph import build_graph
    from archspec.importer import from_torch
    from archspec.interop import load_torchvision_state_dict
    from archspec.ops import Op, load_plugins, register
    from archspec.scaling import scale
    from archspec.spec import Spec, load_spec
    from archspec.zoo import create_model, list_specs

# public name -> the module that defines it, imported when the name is first used
_LAZY = {
    "analyze": "archspec.analysis",
    "Bundle": "archspec.bundle",
    "load_bundle": "archspec.bundle",
    "save_bundle": "archspec.bundle",
    "build": "archspec.compile",  # torch
    "compile_graph": "archspec.compile",  # torch
    "build_graph": "archspec.graph",
    "from_torch": "archspec.importer",  # torch
    "load_torchvision_state_dict": "archspec.interop",  # torch
    "Op": "archspec.ops",
    "load_plugins": "archspec.ops",
    "register": "archspec.ops",
    "scale": "archspec.scaling",
    "Spec": "archspec.spec",
    "load_spec": "archspec.spec",
    "create_model": "archspec.zoo",
    "list_specs": "archspec.zoo",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'archspec' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "ArchspecError",
    "Bundle",
    "BundleError",
    "ExportError",
    "GraphError",
    "Op",
    "ScaleError",
    "SearchError",
    "Spec",
    "SpecError",
    "SpecSyntaxError",
    "SpecValidationError",
    "analyze",
    "build",
    "build_graph",
    "compile_graph",
    "create_model",
    "from_torch",
    "list_specs",
    "load_bundle",
    "load_plugins",
    "load_spec",
    "load_torchvision_state_dict",
    "register",
    "save_bundle",
    "scale",
]
