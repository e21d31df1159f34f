"""Train-time regularizers that are the identity in eval: dropout and stochastic depth."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from archspec.ops.base import Op, Probability, register
from archspec.shape import Shape


@register
class Dropout(Op):
    """Zero each element with probability p during training."""

    op = "dropout"

    p: Probability = 0.5

    def build(self, inputs: list[Shape]) -> nn.Module:
        return nn.Dropout(self.p)


class StochasticDepthModule(nn.Module):
    """Drops whole residual branches per sample (Huang et al. 2016), rescaling survivors."""

    def __init__(self, p: float, mode: str):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        shape = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        keep = 1.0 - self.p
        noise = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * noise.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


@register
class StochasticDepth(Op):
    """Drop the branch for a random subset of samples (`row`) or the whole batch (`batch`)."""

    op = "stochastic_depth"

    p: Probability = 0.0
    mode: Literal["row", "batch"] = "row"

    def build(self, inputs: list[Shape]) -> nn.Module:
        return StochasticDepthModule(self.p, self.mode)
