"""Convolutions: conv2d (pairs, groups, dilation, 'same' padding, depthwise), BiT's
std_conv2d, NF-Nets' scaled_std_conv2d, ViT's patch_embed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from archspec.ops.base import (
    Channels,
    KernelPair,
    Op,
    PositiveInt,
    PositivePair,
    ShapeError,
    Window,
    conv_out,
    example,
    pair,
    pair_of,
    register,
)
from archspec.shape import Shape

if TYPE_CHECKING:
    import torch
    from torch import fx, nn


@register
class Conv2d(Op):
    """2-D convolution. `kernel_size`, `stride`, `padding` and `dilation` take an int or
    [h, w] (Inception's 1x7 and 7x1); `out_channels` defaults to the input's; `groups:
    depthwise` means one group per input channel; `padding: same` keeps the size at stride 1
    (ceil(size/stride) else); `padding: tf_same` is TensorFlow's SAME at any stride (timm's
    Conv2dSame in the tf_ models): ceil(size/stride) outputs, the odd pixel of padding after."""

    op = "conv2d"
    overwritable = True
    layouts = ("CHW",)
    examples = (
        example({"out_channels": 4, "kernel_size": 3, "padding": 1}, (3, 9, 9)),
        example({"out_channels": 6, "kernel_size": [1, 7], "padding": [0, 3]}, (4, 9, 11)),
        example(
            {"kernel_size": 3, "stride": [2, 1], "dilation": [1, 2], "groups": "depthwise"},
            (4, 11, 11),
        ),
        example(
            {"out_channels": 4, "kernel_size": [2, 4], "padding": "same", "bias": False}, (2, 9, 9)
        ),
        example(
            {
                "out_channels": 4,
                "kernel_size": 3,
                "stride": 2,
                "padding": "same",
                "groups": 2,
                "padding_mode": "reflect",
            },
            (2, 10, 9),
        ),
        example(
            {"out_channels": 4, "kernel_size": 3, "stride": 2, "padding": "tf_same"}, (2, 10, 9)
        ),
    )

    out_channels: Channels | None = None
    kernel_size: KernelPair
    stride: PositivePair = 1
    padding: pair_of(0, 1 << 20, ("same", "valid", "tf_same")) = 0
    dilation: PositivePair = 1
    groups: PositiveInt | Literal["depthwise"] = 1
    bias: bool = True
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"

    def resolved(self, inputs: list[Shape]) -> tuple[int, int, int]:
        """(in_channels, out_channels, groups) for this input."""
        cin = inputs[0].channels
        cout = cin if self.out_channels is None else self.out_channels
        groups = cin if self.groups == "depthwise" else self.groups
        return cin, cout, groups

    def axes(self) -> list[tuple[int, int, int]]:
        """(kernel, stride, dilation) along height, then width."""
        k, s, d = pair(self.kernel_size), pair(self.stride), pair(self.dilation)
        return list(zip(k, s, d, strict=True))

    def tf_sides(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) of `padding: tf_same` on an input of `size`."""
        totals = [
            max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            for n, (k, s, d) in zip(size, self.axes(), strict=True)
        ]
        return (
            totals[0] // 2,
            totals[0] - totals[0] // 2,
            totals[1] // 2,
            totals[1] - totals[1] // 2,
        )

    def pad(self) -> tuple[int, int] | str:
        """Padding per axis; 'same' where torch must pad unevenly (an even kernel). tf_same pads
        before the convolution (see emit), which itself pads nothing."""
        if self.padding in ("valid", "tf_same"):
            return 0, 0
        if self.padding == "same":
            spans = [d * (k - 1) for k, _, d in self.axes()]
            if all(span % 2 == 0 for span in spans):
                return spans[0] // 2, spans[1] // 2
            return "same"
        return pair(self.padding)

    def infer(self, inputs: list[Shape]) -> Shape:
        cin, cout, groups = self.resolved(inputs)
        if cin % groups or cout % groups:
            raise ShapeError(
                f"groups={groups} must divide in_channels={cin} and out_channels={cout}"
            )
        pad = self.pad()
        if pad == "same" and pair(self.stride) != (1, 1):
            raise ShapeError("padding 'same' with an even kernel_size needs stride 1")
        h, w = inputs[0].spatial
        if self.padding == "tf_same":
            if self.padding_mode != "zeros":
                raise ShapeError("padding tf_same pads with zeros: padding_mode must be zeros")
            top, bottom, left, right = self.tf_sides((h, w))
            h, w = h + top + bottom, w + left + right
        self._check_padding_mode(pad, (h, w))
        if pad == "same":
            return Shape.image(cout, h, w)
        oh, ow = (
            conv_out(size, k, s, p, d)
            for size, (k, s, d), p in zip((h, w), self.axes(), pad, strict=True)
        )
        if oh < 1 or ow < 1:
            raise ShapeError(
                f"kernel_size {_text(self.kernel_size)} (dilation {_text(self.dilation)}) does "
                f"not fit the {h}x{w} input with padding {_text(pad)}"
            )
        return Shape.image(cout, oh, ow)

    def _check_padding_mode(self, pad: Any, sizes: tuple[int, int]) -> None:
        """torch's runtime rule, statically: reflect pads each side by less than the input
        size, circular by at most the size (it cannot wrap around more than once)."""
        if self.padding_mode not in ("reflect", "circular"):
            return
        if pad == "same":  # total d*(k-1) per axis, the larger half on the right
            sides = [-(-d * (k - 1) // 2) for k, _, d in self.axes()]
        else:
            sides = list(pad)
        for side, size in zip(sides, sizes, strict=True):
            if (side >= size) if self.padding_mode == "reflect" else (side > size):
                rule = "less than" if self.padding_mode == "reflect" else "at most"
                raise ShapeError(
                    f"padding_mode {self.padding_mode} pads each side by {rule} the input size; "
                    f"got padding {side} on the {sizes[0]}x{sizes[1]} input"
                )

    def sampled(self, inputs: list[Shape]) -> tuple[int, int] | None:
        """The stride of a 1x1 strided convolution emitted as the same convolution at stride
        1 on every stride-th pixel (the same sums), else None. oneDNN 3.12's AVX-512 kernel
        for the weight gradient of a channels-last 1x1 strided convolution with at most 8 input
        channels corrupts memory on inputs of 46 pixels and more (torch 2.14.1 CPU: a
        segfault or "double free"; a downsampling shortcut of a narrow ResNet at 64 px), so
        such convolutions on inputs above 40 pixels take the other path."""
        cin, _, groups = self.resolved(inputs)
        stride = pair(self.stride)
        plain = self.pad() == (0, 0) and pair(self.dilation) == (1, 1) and groups == 1
        if pair(self.kernel_size) != (1, 1) or stride == (1, 1) or not plain or cin > 8:
            return None
        return stride if max(inputs[0].spatial) > 40 else None

    def build(self, inputs: list[Shape]) -> nn.Module:

        cin, cout, groups = self.resolved(inputs)
        return self.module(
            cin,
            cout,
            pair(self.kernel_size),
            (1, 1) if self.sampled(inputs) else pair(self.stride),
            self.pad(),
            pair(self.dilation),
            groups,
            self.bias,
            self.padding_mode,
        )

    def module(self, *args: Any) -> nn.Module:
        """The torch module for nn.Conv2d's positional arguments."""
        from torch import nn

        return nn.Conv2d(*args)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        if self.padding == "tf_same" and any(self.tf_sides(inputs[0].spatial)):
            import torch.nn.functional as F

            top, bottom, left, right = self.tf_sides(inputs[0].spatial)
            args = [graph.call_function(F.pad, (args[0], (left, right, top, bottom)))]
        stride = self.sampled(inputs)
        if stride is None:
            return graph.call_module(target, tuple(args))
        import operator

        every = (
            slice(None),
            slice(None),
            slice(None, None, stride[0]),
            slice(None, None, stride[1]),
        )
        return graph.call_module(target, (graph.call_function(operator.getitem, (args[0], every)),))

    def count_params(self, inputs: list[Shape]) -> int:
        cin, cout, groups = self.resolved(inputs)
        kh, kw = pair(self.kernel_size)
        return cout * (cin // groups) * kh * kw + (cout if self.bias else 0)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        cin, _, groups = self.resolved(inputs)
        kh, kw = pair(self.kernel_size)
        return output.numel * (cin // groups) * kh * kw

    def windows(self, inputs: list[Shape]) -> tuple[Window, Window]:
        pad = self.pad()
        if pad == "same":  # torch puts the odd pixel of padding after: the left part is floor
            pad = tuple(d * (k - 1) // 2 for k, _, d in self.axes())
        if self.padding == "tf_same":
            top, _, left, _ = self.tf_sides(inputs[0].spatial)
            pad = (top, left)
        h, w = (Window(k, s, d, p) for (k, s, d), p in zip(self.axes(), pad, strict=True))
        return h, w


@register
class StdConv2d(Conv2d):
    """conv2d with Weight Standardization (Qiao et al. 2019; BiT's ResNet-V2, Kolesnikov et
    al. 2020): each output channel's weights are standardized over their fan-in (`eps` added
    to the variance) before the convolution, as timm's StdConv2d. Fields as conv2d's."""

    op = "std_conv2d"
    examples = (
        example({"out_channels": 4, "kernel_size": 3, "padding": 1, "bias": False}, (3, 9, 9)),
        example(
            {"out_channels": 6, "kernel_size": 3, "stride": 2, "padding": "tf_same", "eps": 1e-8},
            (2, 10, 9),
        ),
    )

    eps: Annotated[float, Field(gt=0.0, lt=1.0)] = 1e-6

    def module(self, *args: Any) -> nn.Module:
        from archspec.ops.modules import StdConv2dModule

        return StdConv2dModule(*args, eps=self.eps)


@register
class ScaledStdConv2d(Conv2d):
    """conv2d with Scaled Weight Standardization (NF-Nets, Brock et al. 2021): each output
    channel's weights are standardized over their fan-in and scaled by a learned `gain` (per
    output channel, initialised to `gain_init`) times gamma / sqrt(fan-in), as timm's
    ScaledStdConv2d. Fields as conv2d's."""

    op = "scaled_std_conv2d"
    examples = (
        example({"out_channels": 4, "kernel_size": 3, "padding": 1, "gamma": 1.7}, (3, 9, 9)),
        example(
            {"out_channels": 6, "kernel_size": 3, "stride": 2, "padding": "tf_same"}, (2, 10, 9)
        ),
    )

    gamma: Annotated[float, Field(gt=0.0, le=1e3)] = 1.0
    eps: Annotated[float, Field(gt=0.0, lt=1.0)] = 1e-6
    gain_init: Annotated[float, Field(ge=-1e3, le=1e3)] = 1.0

    def module(self, *args: Any) -> nn.Module:
        from archspec.ops.modules import ScaledStdConv2dModule

        return ScaledStdConv2dModule(
            *args, gamma=self.gamma, eps=self.eps, gain_init=self.gain_init
        )

    def count_params(self, inputs: list[Shape]) -> int:
        return super().count_params(inputs) + self.resolved(inputs)[1]  # + gain


def _text(value: int | tuple[int, int] | str) -> str:
    """An int, [h, w] or word as written in a spec."""
    return f"[{value[0]}, {value[1]}]" if isinstance(value, tuple) else str(value)


def _patches_to_tokens(x: torch.Tensor) -> torch.Tensor:
    # (N, C, H/p, W/p) -> (N, L, C)
    return x.flatten(2).transpose(1, 2)


@register
class PatchEmbed(Op):
    """Non-overlapping patches to tokens: conv with kernel = stride = patch_size (an int or
    [h, w]), then (N,L,C)."""

    op = "patch_embed"
    layouts = ("CHW",)
    examples = (
        example({"out_channels": 6, "patch_size": 4}, (3, 8, 12)),
        example({"out_channels": 4, "patch_size": [2, 3], "bias": False}, (3, 8, 9)),
    )

    out_channels: Channels
    patch_size: PositivePair
    bias: bool = True

    def infer(self, inputs: list[Shape]) -> Shape:
        (h, w), (ph, pw) = inputs[0].spatial, pair(self.patch_size)
        if h % ph or w % pw:
            raise ShapeError(f"input {h}x{w} is not divisible by patch_size {self.patch_size}")
        return Shape("LC", ((h // ph) * (w // pw), self.out_channels))

    def build(self, inputs: list[Shape]) -> nn.Module:
        from torch import nn

        p = pair(self.patch_size)
        return nn.Conv2d(inputs[0].channels, self.out_channels, p, p, bias=self.bias)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        return graph.call_function(_patches_to_tokens, (graph.call_module(target, tuple(args)),))

    def count_params(self, inputs: list[Shape]) -> int:
        ph, pw = pair(self.patch_size)
        weights = self.out_channels * inputs[0].channels * ph * pw
        return weights + (self.out_channels if self.bias else 0)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        ph, pw = pair(self.patch_size)
        return output.numel * inputs[0].channels * ph * pw

    def windows(self, inputs: list[Shape]) -> tuple[Window, Window]:
        ph, pw = pair(self.patch_size)
        return Window(ph, ph), Window(pw, pw)
