"""What a Vision Transformer needs beyond linear layers: tokens, positions, attention."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from archspec.ops.base import Op, PositiveInt, Probability, ShapeError, Window, example, register
from archspec.shape import Shape

TOKENS = Shape("LC", (5, 6))

if TYPE_CHECKING:
    from torch import fx, nn


@register
class ClassToken(Op):
    """Prepend a learned class token to a token sequence (ViT)."""

    op = "class_token"
    layouts = ("LC",)
    examples = (example({}, TOKENS),)

    def infer(self, inputs: list[Shape]) -> Shape:
        length, channels = inputs[0].dims
        return Shape("LC", (length + 1, channels))

    def build(self, inputs: list[Shape]) -> nn.Parameter:
        import torch

        return torch.nn.Parameter(torch.zeros(1, 1, inputs[0].channels))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        from archspec.ops.modules import prepend_token

        return graph.call_function(prepend_token, (args[0], graph.get_attr(target)))

    def count_params(self, inputs: list[Shape]) -> int:
        return inputs[0].channels


@register
class PosEmbedding(Op):
    """Add a learned position embedding, one vector per token (ViT)."""

    op = "pos_embedding"
    layouts = ("LC",)
    examples = (example({}, TOKENS),)

    init_std: Annotated[float, Field(gt=0.0, le=10.0)] = 0.02

    def build(self, inputs: list[Shape]) -> nn.Parameter:
        import torch

        return torch.nn.Parameter(torch.empty(1, *inputs[0].dims).normal_(std=self.init_std))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        return graph.call_function(operator.add, (args[0], graph.get_attr(target)))

    def count_params(self, inputs: list[Shape]) -> int:
        return inputs[0].numel


@register
class Attention(Op):
    """Multi-head self-attention over a token sequence (torch's nn.MultiheadAttention)."""

    op = "attention"
    layouts = ("LC",)
    examples = (example({"num_heads": 2}, TOKENS), example({"num_heads": 3, "bias": False}, TOKENS))

    num_heads: PositiveInt
    dropout: Probability = 0.0
    bias: bool = True

    def infer(self, inputs: list[Shape]) -> Shape:
        if inputs[0].channels % self.num_heads:
            raise ShapeError(
                f"num_heads {self.num_heads} must divide the {inputs[0].channels} channels"
            )
        return inputs[0]

    def build(self, inputs: list[Shape]) -> nn.Module:
        from torch import nn

        c = inputs[0].channels
        return nn.MultiheadAttention(c, self.num_heads, self.dropout, self.bias, batch_first=True)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        x = args[0]
        out = graph.call_module(target, (x, x, x), {"need_weights": False})
        return graph.call_function(operator.getitem, (out, 0))

    def count_params(self, inputs: list[Shape]) -> int:
        c = inputs[0].channels
        return 4 * c * c + (4 * c if self.bias else 0)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        length, c = inputs[0].dims
        # q, k, v and output projections, then scores (L x L x C) and the weighted sum
        return 4 * length * c * c + 2 * length * length * c

    def window(self, inputs: list[Shape]) -> Window:
        return Window(whole=True)


@register
class SelectToken(Op):
    """Keep one token of a sequence, e.g. the class token: (N,L,C) -> (N,C)."""

    op = "select_token"
    layouts = ("LC",)
    examples = (example({}, TOKENS), example({"index": -1}, TOKENS))

    index: int = 0

    def infer(self, inputs: list[Shape]) -> Shape:
        length = inputs[0].dims[0]
        if not -length <= self.index < length:
            raise ShapeError(f"index {self.index} is outside the {length} tokens")
        return Shape("C", (inputs[0].channels,))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        return graph.call_function(operator.getitem, (args[0], (slice(None), self.index)))
