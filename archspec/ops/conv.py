"""Convolutions: conv2d (groups, dilation, 'same' padding, depthwise) and ViT's patch_embed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from archspec.ops.base import (
    Channels,
    Kernel,
    Op,
    PositiveInt,
    ShapeError,
    Window,
    conv_out,
    register,
)
from archspec.shape import Shape

if TYPE_CHECKING:
    import torch
    from torch import fx, nn


@register
class Conv2d(Op):
    """2-D convolution. `out_channels` defaults to the input's; `groups: depthwise` means one
    group per input channel; `padding: same` keeps the size at stride 1 (ceil(size/stride) else)."""

    op = "conv2d"
    layouts = ("CHW",)

    out_channels: Channels | None = None
    kernel_size: Kernel
    stride: PositiveInt = 1
    padding: int | Literal["same", "valid"] = 0
    dilation: PositiveInt = 1
    groups: PositiveInt | Literal["depthwise"] = 1
    bias: bool = True
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"

    def resolved(self, inputs: list[Shape]) -> tuple[int, int, int]:
        """(in_channels, out_channels, groups) for this input."""
        cin = inputs[0].channels
        cout = cin if self.out_channels is None else self.out_channels
        groups = cin if self.groups == "depthwise" else self.groups
        return cin, cout, groups

    def pad(self) -> int | str:
        if self.padding == "valid":
            return 0
        if self.padding == "same":
            if self.kernel_size % 2 == 1:
                return self.dilation * (self.kernel_size - 1) // 2
            return "same"
        return self.padding

    def infer(self, inputs: list[Shape]) -> Shape:
        cin, cout, groups = self.resolved(inputs)
        if cin % groups or cout % groups:
            raise ShapeError(
                f"groups={groups} must divide in_channels={cin} and out_channels={cout}"
            )
        pad = self.pad()
        if pad == "same" and self.stride != 1:
            raise ShapeError("padding 'same' with an even kernel_size needs stride 1")
        if isinstance(pad, int) and pad < 0:
            raise ShapeError(f"padding must be >= 0; got {pad}")
        h, w = inputs[0].spatial
        if pad == "same":
            return Shape.image(cout, h, w)
        oh, ow = (conv_out(s, self.kernel_size, self.stride, pad, self.dilation) for s in (h, w))
        if oh < 1 or ow < 1:
            raise ShapeError(
                f"kernel_size {self.kernel_size} (dilation {self.dilation}) does not fit the "
                f"{h}x{w} input with padding {pad}"
            )
        return Shape.image(cout, oh, ow)

    def build(self, inputs: list[Shape]) -> nn.Module:
        from torch import nn

        cin, cout, groups = self.resolved(inputs)
        return nn.Conv2d(
            cin,
            cout,
            self.kernel_size,
            self.stride,
            self.pad(),
            self.dilation,
            groups,
            self.bias,
            self.padding_mode,
        )

    def count_params(self, inputs: list[Shape]) -> int:
        cin, cout, groups = self.resolved(inputs)
        return cout * (cin // groups) * self.kernel_size**2 + (cout if self.bias else 0)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        cin, _, groups = self.resolved(inputs)
        return output.numel * (cin // groups) * self.kernel_size**2

    def window(self, inputs: list[Shape]) -> Window:
        pad = self.pad()
        pad = self.dilation * (self.kernel_size - 1) // 2 if pad == "same" else pad
        return Window(self.kernel_size, self.stride, self.dilation, int(pad))


def _patches_to_tokens(x: torch.Tensor) -> torch.Tensor:
    # (N, C, H/p, W/p) -> (N, L, C)
    return x.flatten(2).transpose(1, 2)


@register
class PatchEmbed(Op):
    """Non-overlapping patches to tokens: conv with kernel = stride = patch_size, then (N,L,C)."""

    op = "patch_embed"
    layouts = ("CHW",)

    out_channels: Channels
    patch_size: PositiveInt
    bias: bool = True

    def infer(self, inputs: list[Shape]) -> Shape:
        h, w = inputs[0].spatial
        if h % self.patch_size or w % self.patch_size:
            raise ShapeError(f"input {h}x{w} is not divisible by patch_size {self.patch_size}")
        return Shape("LC", ((h // self.patch_size) * (w // self.patch_size), self.out_channels))

    def build(self, inputs: list[Shape]) -> nn.Module:
        from torch import nn

        p = self.patch_size
        return nn.Conv2d(inputs[0].channels, self.out_channels, p, p, bias=self.bias)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        return graph.call_function(_patches_to_tokens, (graph.call_module(target, tuple(args)),))

    def count_params(self, inputs: list[Shape]) -> int:
        cin = inputs[0].channels
        return self.out_channels * cin * self.patch_size**2 + (
            self.out_channels if self.bias else 0
        )

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return output.numel * inputs[0].channels * self.patch_size**2

    def window(self, inputs: list[Shape]) -> Window:
        return Window(self.patch_size, self.patch_size)
