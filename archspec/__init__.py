"""archspec: declarative neural architectures, compiled to PyTorch and searched with Optuna.
Names that need torch are imported on first use (PEP 562), so `import archspec` and the spec,
graph and analysis stages stay torch-free (`archspec validate` does not pay torch's import)."""

from typing import TYPE_CHECKING, Any

from archspec.analysis import analyze
from archspec.bundle import Bundle, load_bundle, save_bundle
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
from archspec.graph import build_graph
from archspec.ops import Op, register
from archspec.scale import scale
from archspec.spec import Spec, load_spec
from archspec.zoo import list_specs

if TYPE_CHECKING:
    from archspec.compile import build, compile_graph
    from archspec.interop import load_torchvision_state_dict
    from archspec.zoo import create_model

# public name -> the module that defines it, imported when the name is first used
_NEEDS_TORCH = {
    "build": "archspec.compile",
    "compile_graph": "archspec.compile",
    "create_model": "archspec.zoo",
    "load_torchvision_state_dict": "archspec.interop",
}


def __getattr__(name: str) -> Any:
    if name not in _NEEDS_TORCH:
        raise AttributeError(f"module 'archspec' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_NEEDS_TORCH[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NEEDS_TORCH))


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
    "list_specs",
    "load_bundle",
    "load_spec",
    "load_torchvision_state_dict",
    "register",
    "save_bundle",
    "scale",
]
