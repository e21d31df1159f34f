"""Layout changes without arithmetic: flatten, permute between channels-first and -last."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from archspec.ops.base import Op, ShapeError, register
from archspec.shape import Shape

if TYPE_CHECKING:
    from torch import fx


@register
class Flatten(Op):
    """(N,C,H,W) -> (N,C*H*W): a feature vector for linear layers."""

    op = "flatten"

    def infer(self, inputs: list[Shape]) -> Shape:
        return Shape("C", (inputs[0].numel,))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        import torch

        return graph.call_function(torch.flatten, tuple(args), {"start_dim": 1})


_PERMUTATIONS = {("CHW", "HWC"): (0, 2, 3, 1), ("HWC", "CHW"): (0, 3, 1, 2)}


@register
class Permute(Op):
    """Switch an image tensor between channels-first (N,C,H,W) and channels-last (N,H,W,C)."""

    op = "permute"
    layouts = ("CHW", "HWC")

    to: Literal["CHW", "HWC"]

    def infer(self, inputs: list[Shape]) -> Shape:
        src = inputs[0]
        if src.layout == self.to:
            raise ShapeError(f"input is already {src.describe()}")
        c, h, w = (src.channels, *src.spatial)
        return Shape.image(c, h, w) if self.to == "CHW" else Shape("HWC", (h, w, c))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        dims = _PERMUTATIONS[(inputs[0].layout, self.to)]
        return graph.call_method("permute", (args[0], *dims))
