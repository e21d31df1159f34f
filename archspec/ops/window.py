"""Swin Transformer's windowed attention (Liu et al. 2021): attention inside local windows,
optionally cyclically shifted, with a learned relative position bias."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from archspec.ops.base import (
    Op,
    PositiveInt,
    PositivePair,
    Probability,
    ShapeError,
    SizePair,
    Window,
    example,
    pair,
    register,
)
from archspec.shape import Shape

if TYPE_CHECKING:
    from torch import nn


@register
class WindowAttention(Op):
    """Multi-head self-attention within non-overlapping `window_size` windows of a
    channels-last (N,H,W,C) tensor, plus a learned relative position bias per head. With
    `shift_size` > 0 the map is first rolled by -shift (and back after) so that windows straddle
    the previous layer's, and attention across the wrap-around is masked (Swin's SW-MSA). The
    map is zero-padded to whole windows and cropped back; a window covering a whole axis is not
    shifted along it. Parameters (qkv, proj, relative_position_bias_table) are torchvision's."""

    op = "window_attention"
    layouts = ("HWC",)
    tiles: ClassVar[bool] = True  # an output sees the window it falls in, not one centred on it
    examples = (
        example({"num_heads": 2, "window_size": 4}, Shape("HWC", (8, 8, 8))),
        example({"num_heads": 2, "window_size": 4, "shift_size": 2}, Shape("HWC", (8, 8, 8))),
        example(
            {"num_heads": 1, "window_size": [3, 2], "shift_size": [1, 1], "qkv_bias": False},
            Shape("HWC", (7, 5, 4)),
        ),
    )

    num_heads: PositiveInt
    window_size: PositivePair = 7
    shift_size: SizePair = 0
    qkv_bias: bool = True
    proj_bias: bool = True
    attention_dropout: Probability = 0.0
    dropout: Probability = 0.0

    def padded(self, shape: Shape) -> tuple[int, int]:
        """The map size after padding to whole windows."""
        (h, w), (wh, ww) = shape.spatial, pair(self.window_size)
        return -(-h // wh) * wh, -(-w // ww) * ww

    def infer(self, inputs: list[Shape]) -> Shape:
        channels = inputs[0].channels
        if channels % self.num_heads:
            raise ShapeError(f"num_heads {self.num_heads} must divide the {channels} channels")
        if any(s >= w for s, w in zip(pair(self.shift_size), pair(self.window_size), strict=True)):
            raise ShapeError(
                f"shift_size {self.shift_size} must be smaller than window_size {self.window_size}"
            )
        return inputs[0]

    def build(self, inputs: list[Shape]) -> nn.Module:
        from archspec.ops.modules import ShiftedWindowAttention

        return ShiftedWindowAttention(
            inputs[0].channels,
            pair(self.window_size),
            pair(self.shift_size),
            self.num_heads,
            self.qkv_bias,
            self.proj_bias,
            self.attention_dropout,
            self.dropout,
        )

    def count_params(self, inputs: list[Shape]) -> int:
        c = inputs[0].channels
        wh, ww = pair(self.window_size)
        table = (2 * wh - 1) * (2 * ww - 1) * self.num_heads
        return 4 * c * c + 3 * c * self.qkv_bias + c * self.proj_bias + table

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        ph, pw = self.padded(inputs[0])
        c, tokens = inputs[0].channels, ph * pw
        wh, ww = pair(self.window_size)
        # qkv and output projections, then scores and weighted sum within each window
        return 4 * tokens * c * c + 2 * tokens * wh * ww * c

    def windows(self, inputs: list[Shape]) -> tuple[Window, Window]:
        (wh, ww), (h, w) = pair(self.window_size), inputs[0].spatial
        return Window(kernel=min(wh, h)), Window(kernel=min(ww, w))
