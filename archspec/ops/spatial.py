"""Spatial indexing without arithmetic: roll (cyclic shift), slice (strided crop), pad, upsample
(nearest neighbour)."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import field_validator

from archspec.ops.base import (
    Op,
    PositivePair,
    ShapeError,
    SizePair,
    Window,
    example,
    pair,
    pair_of,
    register,
)
from archspec.shape import Shape

if TYPE_CHECKING:
    from torch import fx

CHANNELS_LAST = Shape("HWC", (9, 8, 3))
SignedPair = pair_of(-(1 << 20), 1 << 20)


def spatial_dims(shape: Shape) -> tuple[int, int]:
    """The height and width axes of an image tensor, batch axis included."""
    return (2, 3) if shape.layout == "CHW" else (1, 2)


@register
class Roll(Op):
    """Cyclic shift of the spatial axes by `shifts` (an int or [h, w]) as torch.roll: the
    pixel at (i, j) moves to (i + h, j + w), wrapping around (Swin's shifted windows)."""

    op = "roll"
    layouts = ("CHW", "HWC")
    examples = (
        example({"shifts": [2, -1]}, (2, 9, 9)),
        example({"shifts": -3}, CHANNELS_LAST),
    )

    shifts: SignedPair

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        import torch

        kwargs = {"shifts": pair(self.shifts), "dims": spatial_dims(inputs[0])}
        return graph.call_function(torch.roll, (args[0],), kwargs)

    def windows(self, inputs: list[Shape]) -> tuple[Window, Window]:
        # output (i, j) reads input (i - h, j - w): a 1x1 window offset by the shift
        h, w = pair(self.shifts)
        return Window(padding=h), Window(padding=w)


@register
class Slice(Op):
    """Strided slicing of the spatial axes, x[..., start:stop:step] on height and width; each
    of `start`, `stop` (exclusive, null = to the end) and `step` is an int or [h, w]. Swin's
    patch merging reads the four pixels of each 2x2 patch as step 2 from starts [0|1, 0|1]."""

    op = "slice"
    layouts = ("CHW", "HWC")
    examples = (
        example({"start": [1, 0], "step": 2}, (3, 9, 8)),
        example({"start": 2, "stop": [7, 6], "step": [1, 3]}, CHANNELS_LAST),
    )

    start: SizePair = 0
    stop: PositivePair | None = None
    step: PositivePair = 1

    def ranges(self, shape: Shape) -> list[range]:
        stops = (None, None) if self.stop is None else pair(self.stop)
        return [
            range(start, size if stop is None else min(stop, size), step)
            for size, start, stop, step in zip(
                shape.spatial, pair(self.start), stops, pair(self.step), strict=True
            )
        ]

    def infer(self, inputs: list[Shape]) -> Shape:
        kept = self.ranges(inputs[0])
        if any(len(r) == 0 for r in kept):
            h, w = inputs[0].spatial
            raise ShapeError(f"the slice keeps no pixels of the {h}x{w} input")
        size = (len(kept[0]), len(kept[1]))
        if inputs[0].layout == "CHW":
            return Shape.image(inputs[0].channels, *size)
        return Shape("HWC", (*size, inputs[0].channels))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        index: list[Any] = [slice(None)] * 4
        for dim, kept in zip(spatial_dims(inputs[0]), self.ranges(inputs[0]), strict=True):
            index[dim] = slice(kept.start, kept.stop, kept.step)
        while index[-1] == slice(None):
            index.pop()
        return graph.call_function(operator.getitem, (args[0], tuple(index)))

    def windows(self, inputs: list[Shape]) -> tuple[Window, Window]:
        h, w = self.ranges(inputs[0])
        return Window(stride=h.step, padding=-h.start), Window(stride=w.step, padding=-w.start)


@register
class Pad(Op):
    """Pad height and width (torch.nn.functional.pad): `padding` is an int (every side),
    [h, w] (h above and below, w left and right) or [top, bottom, left, right]; `mode`
    constant (with `value`), reflect, replicate or circular (these on (N,C,H,W) only)."""

    op = "pad"
    layouts = ("CHW", "HWC")
    examples = (
        example({"padding": [1, 0, 2, 3]}, (2, 6, 7)),
        example({"padding": [2, 1], "mode": "reflect"}, (2, 6, 7)),
        example({"padding": 1, "value": 0.5}, CHANNELS_LAST),
    )

    padding: int | list[int]
    mode: Literal["constant", "reflect", "replicate", "circular"] = "constant"
    value: float = 0.0

    @field_validator("padding")
    @classmethod
    def _sides(cls, padding: int | list[int]) -> int | list[int]:
        sides = [padding] if isinstance(padding, int) else padding
        if len(sides) not in (1, 2, 4) or not all(0 <= p <= 1 << 20 for p in sides):
            raise ValueError(
                "padding takes an int, [h, w] or [top, bottom, left, right], each >= 0"
            )
        return padding

    def sides(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right)"""
        p = self.padding
        if isinstance(p, int):
            return p, p, p, p
        if len(p) == 2:
            return p[0], p[0], p[1], p[1]
        return p[0], p[1], p[2], p[3]

    def infer(self, inputs: list[Shape]) -> Shape:
        top, bottom, left, right = self.sides()
        h, w = inputs[0].spatial
        if self.mode != "constant":
            if inputs[0].layout != "CHW":
                raise ShapeError(f"mode {self.mode} pads an image tensor (N,C,H,W) only")
            limit = (h, w) if self.mode == "circular" else (h - 1, w - 1)
            if max(top, bottom) > limit[0] or max(left, right) > limit[1]:
                raise ShapeError(f"{self.mode} padding {self.padding} is too large for {h}x{w}")
        size = (h + top + bottom, w + left + right)
        if inputs[0].layout == "CHW":
            return Shape.image(inputs[0].channels, *size)
        return Shape("HWC", (*size, inputs[0].channels))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        import torch.nn.functional as F

        top, bottom, left, right = self.sides()
        pad = (left, right, top, bottom)
        if inputs[0].layout == "HWC":
            pad = (0, 0, *pad)
        kwargs: dict[str, Any] = {"mode": self.mode}
        if self.mode == "constant":
            kwargs["value"] = self.value
        return graph.call_function(F.pad, (args[0], pad), kwargs)

    def windows(self, inputs: list[Shape]) -> tuple[Window, Window]:
        top, _, left, _ = self.sides()
        return Window(padding=top), Window(padding=left)


@register
class Upsample(Op):
    """Nearest-neighbour upsampling of (N,C,H,W) by an integer `scale_factor` (an int or
    [h, w]), as nn.Upsample(scale_factor=s, mode="nearest"): output pixel (i, j) is input pixel
    (i // h, j // w). HRNet's fuse layers bring each branch to a finer branch's resolution."""

    op = "upsample"
    layouts = ("CHW",)
    examples = (
        example({"scale_factor": 2}, (3, 5, 4)),
        example({"scale_factor": [4, 2]}, (2, 3, 3)),
    )

    scale_factor: PositivePair

    def infer(self, inputs: list[Shape]) -> Shape:
        (h, w), (sh, sw) = inputs[0].spatial, pair(self.scale_factor)
        return Shape.image(inputs[0].channels, h * sh, w * sw)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        import torch.nn.functional as F

        scale = tuple(float(s) for s in pair(self.scale_factor))
        return graph.call_function(
            F.interpolate, (args[0],), {"scale_factor": scale, "mode": "nearest"}
        )

    def windows(self, inputs: list[Shape]) -> tuple[Window, Window]:
        # output pixel i reads input pixel i // s: one pixel, 1/s input pixels between units
        h, w = pair(self.scale_factor)
        return Window(stride=1 / h), Window(stride=1 / w)  # type: ignore[arg-type]
