"""Elementwise activations, emitted as plain function calls in the generated forward."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import fx

from archspec.ops.base import Op, register
from archspec.shape import Shape


class Activation(Op):
    """Shape-preserving elementwise function of one input."""

    function: ClassVar[Callable[..., Any]]

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        return graph.call_function(type(self).function, tuple(args), self.call_kwargs())

    def call_kwargs(self) -> dict:
        return {}


def _activation(name: str, function: Callable, doc: str) -> type[Activation]:
    cls = type(
        name.title().replace("_", ""),
        (Activation,),
        {
            "__doc__": doc,
            "op": name,
            "function": staticmethod(function),
            "__annotations__": {},
            "__module__": __name__,
        },
    )
    return register(cls)


Relu = _activation("relu", torch.relu, "max(x, 0)")
Relu6 = _activation("relu6", F.relu6, "min(max(x, 0), 6), MobileNetV2's activation")
Silu = _activation("silu", F.silu, "x * sigmoid(x) (swish), EfficientNet's activation")
Hardswish = _activation("hardswish", F.hardswish, "piecewise-linear swish of MobileNetV3")
Sigmoid = _activation("sigmoid", torch.sigmoid, "1 / (1 + exp(-x))")
Hardsigmoid = _activation("hardsigmoid", F.hardsigmoid, "piecewise-linear sigmoid")
Tanh = _activation("tanh", torch.tanh, "hyperbolic tangent")


@register
class Gelu(Activation):
    """Gaussian error linear unit; `approximate: tanh` for the tanh approximation."""

    op = "gelu"
    function = staticmethod(F.gelu)
    approximate: Literal["none", "tanh"] = "none"

    def call_kwargs(self) -> dict:
        return {"approximate": self.approximate}


@register
class LeakyRelu(Activation):
    """max(x, 0) + negative_slope * min(x, 0)"""

    op = "leaky_relu"
    function = staticmethod(F.leaky_relu)
    negative_slope: float = 0.01

    def call_kwargs(self) -> dict:
        return {"negative_slope": self.negative_slope}
