"""Normalization: batchnorm, layernorm (over channels, whatever the layout) and groupnorm."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from archspec.ops.base import Op, PositiveInt, ShapeError, example, register
from archspec.shape import Shape

if TYPE_CHECKING:
    from torch import fx, nn

Eps = Annotated[float, Field(gt=0.0, lt=1.0)]


@register
class BatchNorm(Op):
    """Batch normalization over the channels of an image tensor, a feature vector or a token
    sequence (LeViT's LinearNorm: the (N,L,C) tokens flattened to (N*L, C) for BatchNorm1d)."""

    op = "batchnorm"
    overwritable = True
    examples = (
        example({}, (3, 5, 5)),
        example({"affine": False}, Shape("C", (6,))),
        example({}, Shape("LC", (4, 6))),
    )
    normalizes = True
    layouts = ("CHW", "C", "LC")

    eps: Eps = 1e-5
    momentum: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1
    affine: bool = True

    def build(self, inputs: list[Shape]) -> nn.Module:
        from torch import nn

        cls = nn.BatchNorm2d if inputs[0].layout == "CHW" else nn.BatchNorm1d
        return cls(inputs[0].channels, self.eps, self.momentum, self.affine)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        if inputs[0].layout != "LC":
            return graph.call_module(target, tuple(args))
        flat = graph.call_method("flatten", (args[0], 0, 1))  # every token a sample
        return graph.call_method("reshape_as", (graph.call_module(target, (flat,)), args[0]))

    def count_params(self, inputs: list[Shape]) -> int:
        return 2 * inputs[0].channels if self.affine else 0


@register
class LayerNorm(Op):
    """Layer normalization over the channel axis: the last axis of tokens and channels-last
    tensors, axis 1 of an (N,C,H,W) tensor (ConvNeXt's channels-first LayerNorm2d)."""

    op = "layernorm"
    examples = (
        example({}, (3, 5, 5)),
        example({"eps": 1e-6}, Shape("HWC", (5, 5, 3))),
        example({"elementwise_affine": False}, Shape("LC", (4, 6))),
    )
    normalizes = True

    eps: Eps = 1e-5
    elementwise_affine: bool = True

    def build(self, inputs: list[Shape]) -> nn.Module:
        from torch import nn

        from archspec.ops.modules import LayerNorm2d

        cls = LayerNorm2d if inputs[0].layout == "CHW" else nn.LayerNorm
        return cls(inputs[0].channels, self.eps, self.elementwise_affine)

    def count_params(self, inputs: list[Shape]) -> int:
        return 2 * inputs[0].channels if self.elementwise_affine else 0


@register
class GroupNorm(Op):
    """Group normalization of an image (nn.GroupNorm): the channels split into `num_groups`
    groups, each normalized over its channels and pixels; `num_groups: 1` normalizes over the
    whole sample (PoolFormer's GroupNorm1), one group per channel is InstanceNorm with affine
    weights. Independent of the batch, unlike batchnorm."""

    op = "groupnorm"
    examples = (
        example({"num_groups": 2}, (6, 5, 5)),
        example({"num_groups": 1, "affine": False}, (4, 3, 3)),
    )
    normalizes = True
    layouts = ("CHW",)
    global_gate = True  # each pixel, shifted and scaled by its group's statistics over the image

    num_groups: PositiveInt
    eps: Eps = 1e-5
    affine: bool = True

    def infer(self, inputs: list[Shape]) -> Shape:
        channels = inputs[0].channels
        if channels % self.num_groups:
            raise ShapeError(
                f"groupnorm: {channels} channels do not split into {self.num_groups} groups"
            )
        return inputs[0]

    def build(self, inputs: list[Shape]) -> nn.Module:
        from torch import nn

        return nn.GroupNorm(self.num_groups, inputs[0].channels, self.eps, self.affine)

    def count_params(self, inputs: list[Shape]) -> int:
        return 2 * inputs[0].channels if self.affine else 0
