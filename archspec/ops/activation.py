"""Elementwise activations, emitted as plain function calls in the generated forward."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import model_validator

from archspec.ops.base import Op, example, register, torch_function
from archspec.shape import Shape

if TYPE_CHECKING:
    from torch import fx


class Activation(Op):
    """Shape-preserving elementwise function of one input."""

    function: ClassVar[str]  # the torch function, by dotted name (see torch_function)
    in_place_function: ClassVar[str | None] = None  # else function(..., inplace=True)
    examples = (example({}, (3, 5, 5)), example({}, Shape("LC", (4, 6))))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        return graph.call_function(torch_function(self.function), tuple(args), self.call_kwargs())

    def emit_in_place(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        node = self.emit(graph, args, target, inputs)  # named as the out-of-place call
        if type(self).in_place_function is not None:
            node.target = torch_function(type(self).in_place_function)
        else:
            node.kwargs = {**node.kwargs, "inplace": True}
        return node

    def call_kwargs(self) -> dict:
        return {}


def _activation(
    name: str, function: str, doc: str, in_place: bool = False, in_place_function: str | None = None
) -> type[Activation]:
    cls = type(
        name.title().replace("_", ""),
        (Activation,),
        {
            "__doc__": doc,
            "op": name,
            "function": function,
            "in_place": in_place or in_place_function is not None,
            "in_place_function": in_place_function,
            "__annotations__": {},
            "__module__": __name__,
        },
    )
    return register(cls)


Relu = _activation("relu", "torch.relu", "max(x, 0)", in_place_function="torch.relu_")
Relu6 = _activation(
    "relu6", "torch.nn.functional.relu6", "min(max(x, 0), 6), MobileNetV2's activation", True
)
Silu = _activation(
    "silu", "torch.nn.functional.silu", "x * sigmoid(x) (swish), EfficientNet's activation", True
)
Hardswish = _activation(
    "hardswish", "torch.nn.functional.hardswish", "piecewise-linear swish of MobileNetV3", True
)
Sigmoid = _activation("sigmoid", "torch.sigmoid", "1 / (1 + exp(-x))")
Hardsigmoid = _activation(
    "hardsigmoid", "torch.nn.functional.hardsigmoid", "piecewise-linear sigmoid", True
)
Tanh = _activation("tanh", "torch.tanh", "hyperbolic tangent")
Exp = _activation("exp", "torch.exp", "e ** x (a logit scale kept as its log)")


@register
class Clamp(Activation):
    """min(max(x, min), max), torch's clamp; either bound may be left out."""

    op = "clamp"
    examples = (example({"max": 0.5}, (3, 5, 5)), example({"min": 0.2, "max": 0.8}, (3, 4, 4)))
    function = "torch.clamp"
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Clamp:
        if self.min is None and self.max is None:
            raise ValueError("clamp takes min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def call_kwargs(self) -> dict:
        return {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}


@register
class Gelu(Activation):
    """Gaussian error linear unit; `approximate: tanh` for the tanh approximation."""

    op = "gelu"
    examples = (example({"approximate": "tanh"}, (3, 5, 5)),)
    function = "torch.nn.functional.gelu"
    approximate: Literal["none", "tanh"] = "none"

    def call_kwargs(self) -> dict:
        return {"approximate": self.approximate}


@register
class LeakyRelu(Activation):
    """max(x, 0) + negative_slope * min(x, 0)"""

    op = "leaky_relu"
    examples = (example({"negative_slope": 0.2}, (3, 5, 5)),)
    function = "torch.nn.functional.leaky_relu"
    in_place = True
    negative_slope: float = 0.01

    def call_kwargs(self) -> dict:
        return {"negative_slope": self.negative_slope}
