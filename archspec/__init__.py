"""archspec: declarative neural architectures, compiled to PyTorch and searched with Optuna."""

from archspec.analysis import analyze
from archspec.compile import build, compile_graph
from archspec.errors import (
    ArchspecError,
    ExportError,
    GraphError,
    ScaleError,
    SearchError,
    SpecError,
    SpecSyntaxError,
    SpecValidationError,
)
from archspec.graph import build_graph
from archspec.interop import load_torchvision_state_dict
from archspec.ops import Op, register
from archspec.scale import scale
from archspec.spec import Spec, load_spec
from archspec.zoo import create_model, list_specs

__version__ = "0.1.0"

__all__ = [
    "ArchspecError",
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
    "load_spec",
    "load_torchvision_state_dict",
    "register",
    "scale",
]
