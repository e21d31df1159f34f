"""The op registry. Importing this package registers every built-in op."""

from archspec.ops import (  # noqa: F401 - imported for registration
    activation,
    algebra,
    channel,
    conv,
    linear,
    merge,
    norm,
    pool,
    regularization,
    reshape,
    spatial,
    split,
    transformer,
    window,
)
from archspec.ops.base import (
    REGISTRY,
    Channels,
    Example,
    Kernel,
    Op,
    Scalable,
    ShapeError,
    Window,
    register,
)
from archspec.ops.plugins import PluginError, get_op, load_plugins, origin

__all__ = [
    "REGISTRY",
    "Channels",
    "Example",
    "Kernel",
    "Op",
    "PluginError",
    "Scalable",
    "ShapeError",
    "Window",
    "get_op",
    "load_plugins",
    "origin",
    "register",
]
