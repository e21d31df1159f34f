"""Train-time regularizers that are the identity in eval: dropout and stochastic depth."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from archspec.ops.base import Op, Probability, example, register
from archspec.shape import Shape

if TYPE_CHECKING:
    from torch import nn


@register
class Dropout(Op):
    """Zero each element with probability p during training."""

    op = "dropout"
    examples = (example({"p": 0.2}, (3, 5, 5)),)

    p: Probability = 0.5

    def build(self, inputs: list[Shape]) -> nn.Module:
        from torch import nn

        return nn.Dropout(self.p)


@register
class StochasticDepth(Op):
    """Drop the branch for a random subset of samples (`row`) or the whole batch (`batch`)."""

    op = "stochastic_depth"
    examples = (example({"p": 0.2}, (3, 5, 5)), example({"mode": "batch"}, Shape("LC", (4, 6))))

    p: Probability = 0.0
    mode: Literal["row", "batch"] = "row"

    def build(self, inputs: list[Shape]) -> nn.Module:
        from archspec.ops.modules import StochasticDepthModule

        return StochasticDepthModule(self.p, self.mode)
