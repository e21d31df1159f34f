"""Pooling: max and average windows (ints or [h, w]), adaptive (global) average pooling."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from archspec.ops.base import (
    Op,
    PositivePair,
    ShapeError,
    SizePair,
    Window,
    conv_out,
    example,
    pair,
    register,
    torch_function,
)
from archspec.shape import Shape

if TYPE_CHECKING:
    from torch import fx


class _WindowPool(Op):
    layouts = ("CHW",)
    function: ClassVar[str]  # the torch function, by dotted name (see torch_function)
    examples = (
        example({"kernel_size": 3, "stride": 2, "padding": 1}, (2, 9, 9)),
        example({"kernel_size": [1, 3], "stride": [1, 2], "padding": [0, 1]}, (2, 7, 9)),
        example({"kernel_size": 2, "ceil_mode": True}, (2, 7, 9)),
    )

    kernel_size: PositivePair
    stride: PositivePair | None = None  # defaults to kernel_size, as in torch
    padding: SizePair = 0
    ceil_mode: bool = False

    def axes(self) -> list[tuple[int, int, int]]:
        """(kernel, stride, padding) along height, then width."""
        k = pair(self.kernel_size)
        s = k if self.stride is None else pair(self.stride)
        return list(zip(k, s, pair(self.padding), strict=True))

    def infer(self, inputs: list[Shape]) -> Shape:
        if any(p > k // 2 for k, _, p in self.axes()):
            raise ShapeError(
                f"padding must be between 0 and kernel_size/2; got {self.padding} for "
                f"kernel_size {self.kernel_size}"
            )
        c, h, w = inputs[0].dims
        oh, ow = (
            conv_out(size, k, s, p, 1, self.ceil_mode)
            for size, (k, s, p) in zip((h, w), self.axes(), strict=True)
        )
        if oh < 1 or ow < 1:
            raise ShapeError(f"kernel_size {self.kernel_size} does not fit the {h}x{w} input")
        return Shape.image(c, oh, ow)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        kernel, stride, padding = zip(*self.axes(), strict=True)
        kwargs = {
            "kernel_size": kernel,
            "stride": stride,
            "padding": padding,
            "ceil_mode": self.ceil_mode,
            **self.call_kwargs(),
        }
        return graph.call_function(torch_function(self.function), tuple(args), kwargs)

    def windows(self, inputs: list[Shape]) -> tuple[Window, Window]:
        h, w = (Window(k, s, 1, p) for k, s, p in self.axes())
        return h, w

    def call_kwargs(self) -> dict:
        return {}


@register
class MaxPool(_WindowPool):
    """Max over kernel_size windows (an int or [h, w], as are stride and padding)."""

    op = "maxpool"
    function = "torch.nn.functional.max_pool2d"


@register
class AvgPool(_WindowPool):
    """Mean over kernel_size windows (an int or [h, w], as are stride and padding); zero
    padding is counted, as torch does, unless `count_include_pad: false` (timm, Inception)."""

    op = "avgpool"
    function = "torch.nn.functional.avg_pool2d"
    examples = (
        *_WindowPool.examples,
        example(
            {"kernel_size": 3, "stride": 1, "padding": 1, "count_include_pad": False}, (2, 5, 5)
        ),
    )

    count_include_pad: bool = True

    def call_kwargs(self) -> dict:
        return {} if self.count_include_pad else {"count_include_pad": False}


@register
class AdaptiveAvgPool(Op):
    """Average to an output_size grid (an int or [h, w]); output_size 1 is global average
    pooling."""

    op = "adaptive_avgpool"
    layouts = ("CHW",)
    examples = (
        example({}, (3, 7, 5)),
        example({"output_size": [2, 3]}, (3, 8, 9)),
    )

    output_size: PositivePair = 1

    def infer(self, inputs: list[Shape]) -> Shape:
        return Shape.image(inputs[0].channels, *pair(self.output_size))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        import torch.nn.functional as F

        return graph.call_function(
            F.adaptive_avg_pool2d, tuple(args), {"output_size": self.output_size}
        )

    def windows(self, inputs: list[Shape]) -> tuple[Window, Window]:
        if pair(self.output_size) == (1, 1):
            return Window(whole=True), Window(whole=True)
        # exact where the output divides the input; torch's windows vary by a pixel otherwise
        h, w = (
            Window(kernel=-(-size // out), stride=max(1, size // out))
            for size, out in zip(inputs[0].spatial, pair(self.output_size), strict=True)
        )
        return h, w
