"""Pooling: max and average windows, and adaptive (global) average pooling."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from archspec.ops.base import (
    Op,
    PositiveInt,
    ShapeError,
    Window,
    conv_out,
    register,
    torch_function,
)
from archspec.shape import Shape

if TYPE_CHECKING:
    from torch import fx


class _WindowPool(Op):
    layouts = ("CHW",)
    function: ClassVar[str]  # the torch function, by dotted name (see torch_function)

    kernel_size: PositiveInt
    stride: PositiveInt | None = None  # defaults to kernel_size, as in torch
    padding: int = 0
    ceil_mode: bool = False

    @property
    def step(self) -> int:
        return self.kernel_size if self.stride is None else self.stride

    def infer(self, inputs: list[Shape]) -> Shape:
        if not 0 <= self.padding <= self.kernel_size // 2:
            raise ShapeError(f"padding must be between 0 and kernel_size/2; got {self.padding}")
        c, h, w = inputs[0].dims
        oh, ow = (
            conv_out(s, self.kernel_size, self.step, self.padding, 1, self.ceil_mode)
            for s in (h, w)
        )
        if oh < 1 or ow < 1:
            raise ShapeError(f"kernel_size {self.kernel_size} does not fit the {h}x{w} input")
        return Shape.image(c, oh, ow)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        kwargs = {
            "kernel_size": self.kernel_size,
            "stride": self.step,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
        }
        return graph.call_function(torch_function(self.function), tuple(args), kwargs)

    def window(self, inputs: list[Shape]) -> Window:
        return Window(self.kernel_size, self.step, 1, self.padding)


@register
class MaxPool(_WindowPool):
    """Max over kernel_size x kernel_size windows."""

    op = "maxpool"
    function = "torch.nn.functional.max_pool2d"


@register
class AvgPool(_WindowPool):
    """Mean over kernel_size x kernel_size windows (zero padding counted, as torch does)."""

    op = "avgpool"
    function = "torch.nn.functional.avg_pool2d"


@register
class AdaptiveAvgPool(Op):
    """Average to an output_size x output_size grid; output_size 1 is global average pooling."""

    op = "adaptive_avgpool"
    layouts = ("CHW",)

    output_size: PositiveInt = 1

    def infer(self, inputs: list[Shape]) -> Shape:
        return Shape.image(inputs[0].channels, self.output_size, self.output_size)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        import torch.nn.functional as F

        return graph.call_function(
            F.adaptive_avg_pool2d, tuple(args), {"output_size": self.output_size}
        )

    def window(self, inputs: list[Shape]) -> Window:
        if self.output_size == 1:
            return Window(whole=True)
        size, out = inputs[0].spatial[0], self.output_size
        return Window(kernel=-(-size // out), stride=max(1, size // out))
