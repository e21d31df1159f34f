"""Fully connected layers: linear, and the transformer mlp (linear-act-dropout-linear-dropout)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from archspec.ops.base import Channels, Op, Probability, example, register
from archspec.shape import Shape

if TYPE_CHECKING:
    from torch import nn

FEATURE_LAYOUTS = ("C", "LC", "HWC")


@register
class Linear(Op):
    """y = x W^T + b over the last axis (features, tokens, channels-last pixels, or the
    channels of a generic tensor such as MaxViT's (groups, tokens, C) partitions)."""

    op = "linear"
    overwritable = True
    layouts = (*FEATURE_LAYOUTS, "ND")
    examples = (
        example({"out_features": 5}, Shape("C", (7,))),
        example({"out_features": 3, "bias": False}, Shape("LC", (4, 6))),
        example({"out_features": 3}, Shape("HWC", (3, 4, 6))),
        example({"out_features": 3}, Shape("ND", (2, 3, 4, 6))),
    )

    out_features: Channels
    bias: bool = True

    def infer(self, inputs: list[Shape]) -> Shape:
        return inputs[0].with_channels(self.out_features)

    def build(self, inputs: list[Shape]) -> nn.Module:
        from torch import nn

        return nn.Linear(inputs[0].channels, self.out_features, self.bias)

    def count_params(self, inputs: list[Shape]) -> int:
        return self.out_features * inputs[0].channels + (self.out_features if self.bias else 0)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return output.numel * inputs[0].channels


@register
class Mlp(Op):
    """Transformer MLP block; parameter names match torchvision's MLPBlock (0 and 3)."""

    op = "mlp"
    layouts = FEATURE_LAYOUTS
    examples = (
        example({"hidden_features": 12}, Shape("LC", (4, 6))),
        example({"hidden_features": 8, "out_features": 3, "activation": "relu"}, Shape("C", (5,))),
    )

    hidden_features: Channels
    out_features: Channels | None = None
    activation: Literal["gelu", "relu", "silu"] = "gelu"
    dropout: Probability = 0.0

    def infer(self, inputs: list[Shape]) -> Shape:
        return inputs[0].with_channels(self.out_features or inputs[0].channels)

    def build(self, inputs: list[Shape]) -> nn.Module:
        from torch import nn

        cin = inputs[0].channels
        act = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}[self.activation]
        return nn.Sequential(
            nn.Linear(cin, self.hidden_features),
            act(),
            nn.Dropout(self.dropout),
            nn.Linear(self.hidden_features, self.out_features or cin),
            nn.Dropout(self.dropout),
        )

    def count_params(self, inputs: list[Shape]) -> int:
        cin, hidden = inputs[0].channels, self.hidden_features
        cout = self.out_features or cin
        return cin * hidden + hidden + hidden * cout + cout

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        tokens = output.numel // output.channels
        return tokens * self.hidden_features * (inputs[0].channels + output.channels)
