"""Per-channel reweighting: squeeze-and-excitation and ECA gates, ConvNeXt's layer scale."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator

from archspec.ops.base import Op, PositiveInt, example, register
from archspec.shape import Shape

if TYPE_CHECKING:
    from torch import fx, nn


@register
class SqueezeExcitation(Op):
    """Channel attention: squeeze to `squeeze_channels` by global pooling, excite back, gate."""

    op = "squeeze_excitation"
    layouts = ("CHW",)
    global_gate = True
    examples = (example({"squeeze_channels": 2, "gate": "hardsigmoid"}, (6, 5, 5)),)

    squeeze_channels: PositiveInt
    activation: Literal["relu", "silu", "gelu", "hardswish"] = "relu"
    gate: Literal["sigmoid", "hardsigmoid"] = "sigmoid"

    def build(self, inputs: list[Shape]) -> nn.Module:
        from archspec.ops.modules import SqueezeExcitationModule

        return SqueezeExcitationModule(
            inputs[0].channels, self.squeeze_channels, self.activation, self.gate
        )

    def count_params(self, inputs: list[Shape]) -> int:
        c, s = inputs[0].channels, self.squeeze_channels
        return 2 * c * s + c + s

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return 2 * inputs[0].channels * self.squeeze_channels


@register
class Eca(Op):
    """ECA-Net's channel attention (Wang et al. 2020): the pooled channels, read as a sequence,
    go through one 1-D convolution of `kernel_size` taps (odd, no bias, zero padding) and a
    gate that scales each channel; no squeeze. State as timm's EcaModule (`conv.weight`)."""

    op = "eca"
    layouts = ("CHW",)
    global_gate = True
    examples = (
        example({"kernel_size": 3}, (6, 5, 5)),
        example({"kernel_size": 5, "gate": "hardsigmoid"}, (8, 3, 3)),
    )

    kernel_size: PositiveInt
    gate: Literal["sigmoid", "hardsigmoid"] = "sigmoid"

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("kernel_size must be odd (the channels keep their number)")
        return value

    def build(self, inputs: list[Shape]) -> nn.Module:
        from archspec.ops.modules import EcaModule

        return EcaModule(self.kernel_size, self.gate)

    def count_params(self, inputs: list[Shape]) -> int:
        return self.kernel_size

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return inputs[0].channels * self.kernel_size


@register
class LayerScale(Op):
    """Learnable per-channel scale, initialised small (CaiT / ConvNeXt)."""

    op = "layer_scale"
    examples = (example({"init": 0.5}, (4, 3, 3)), example({}, Shape("HWC", (3, 3, 4))))

    init: Annotated[float, Field(gt=0.0, le=1e3)] = 1e-6

    def build(self, inputs: list[Shape]) -> nn.Parameter:
        import torch

        shape = inputs[0]
        size = (shape.channels, 1, 1) if shape.layout == "CHW" else (shape.channels,)
        return torch.nn.Parameter(torch.full(size, self.init))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        return graph.call_function(operator.mul, (graph.get_attr(target), args[0]))

    def count_params(self, inputs: list[Shape]) -> int:
        return inputs[0].channels
