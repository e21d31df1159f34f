"""Swin Transformer's windowed attention (Liu et al. 2021): attention inside local windows,
optionally cyclically shifted, with a learned relative position bias; Swin V2's cosine attention
and continuous position bias (Liu et al. 2022) as options."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

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
    shifted along it. Parameters (qkv, proj, relative_position_bias_table) are torchvision's.

    Swin V2 (Liu et al. 2022, sections 3.2-3.3): `cosine` scores cos(q, k) times a learned
    per-head scale exp(min(logit_scale, log 100)) instead of q.k / sqrt(d), and ignores the key
    part of the qkv bias; `position_bias: mlp` computes the bias table with an MLP
    (2 -> 512 -> heads, `cpb_mlp`) from log-spaced relative coordinates, then 16 * sigmoid.
    Module names follow torchvision's ShiftedWindowAttention(V2), whose modules import as
    this op."""

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
        example(
            {
                "num_heads": 2,
                "window_size": 4,
                "shift_size": 2,
                "cosine": True,
                "position_bias": "mlp",
            },
            Shape("HWC", (8, 6, 8)),
        ),
    )
    imports = (
        "torchvision.models.swin_transformer.ShiftedWindowAttention",
        "torchvision.models.swin_transformer.ShiftedWindowAttentionV2",
    )

    num_heads: PositiveInt
    window_size: PositivePair = 7
    shift_size: SizePair = 0
    qkv_bias: bool = True
    proj_bias: bool = True
    attention_dropout: Probability = 0.0
    dropout: Probability = 0.0
    cosine: bool = False
    position_bias: Literal["table", "mlp"] = "table"
    # relative_position_index in the state_dict (torchvision) or rebuilt on load (timm)
    persistent_index: bool = True

    # hidden width of Swin V2's continuous position bias MLP (fixed in the paper's code)
    bias_hidden: ClassVar[int] = 512

    @classmethod
    def fields_of(cls, module: nn.Module) -> dict[str, Any]:
        """torchvision's ShiftedWindowAttention(V2): its fields other than the defaults."""
        v2 = hasattr(module, "cpb_mlp")
        window, shift = list(module.window_size), list(module.shift_size)
        fields: dict[str, Any] = {
            "window_size": window[0] if window[0] == window[1] else window,
            "shift_size": shift[0] if shift[0] == shift[1] else shift,
            "qkv_bias": module.qkv.bias is not None,
            "proj_bias": module.proj.bias is not None,
            "attention_dropout": float(module.attention_dropout),
            "dropout": float(module.dropout),
            "cosine": v2,
            "position_bias": "mlp" if v2 else "table",
        }
        changed = {k: v for k, v in fields.items() if v != cls.model_fields[k].default}
        return {"num_heads": module.num_heads, **changed}

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
            self.cosine,
            self.position_bias,
            self.bias_hidden,
            self.persistent_index,
        )

    def count_params(self, inputs: list[Shape]) -> int:
        c = inputs[0].channels
        wh, ww = pair(self.window_size)
        offsets, heads = (2 * wh - 1) * (2 * ww - 1), self.num_heads
        if self.position_bias == "mlp":  # Linear(2, hidden) + Linear(hidden, heads, bias=False)
            bias = 3 * self.bias_hidden + self.bias_hidden * heads
        else:
            bias = offsets * heads
        scale = heads if self.cosine else 0
        return 4 * c * c + 3 * c * self.qkv_bias + c * self.proj_bias + bias + scale

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        ph, pw = self.padded(inputs[0])
        c, tokens = inputs[0].channels, ph * pw
        wh, ww = pair(self.window_size)
        # qkv and output projections, then scores and weighted sum within each window
        total = 4 * tokens * c * c + 2 * tokens * wh * ww * c
        if self.position_bias == "mlp":  # the MLP runs over every relative offset, per forward
            offsets = (2 * wh - 1) * (2 * ww - 1)
            total += offsets * (2 * self.bias_hidden + self.bias_hidden * self.num_heads)
        return total

    def windows(self, inputs: list[Shape]) -> tuple[Window, Window]:
        (wh, ww), (h, w) = pair(self.window_size), inputs[0].spatial
        return Window(kernel=min(wh, h)), Window(kernel=min(ww, w))
