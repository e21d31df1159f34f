"""The torch code that ops build and torch has no class for: modules and forward functions.
Imported only when a network is built (op.build / op.emit), never by the spec or graph stages."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_ACT = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "hardswish": nn.Hardswish}
_GATE = {"sigmoid": nn.Sigmoid, "hardsigmoid": nn.Hardsigmoid}


class SqueezeExcitationModule(nn.Module):
    """x * gate(fc2(act(fc1(mean_hw(x))))) (Hu et al. 2018); names match torchvision's."""

    def __init__(self, channels: int, squeeze: int, activation: str, gate: str):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = _ACT[activation]()
        self.scale_activation = _GATE[gate]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(scale))))
        return scale * x


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N,C,H,W) tensor, as ConvNeXt uses it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


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


def prepend_token(x: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    # (N, L, C), (1, 1, C) -> (N, L+1, C)
    return torch.cat([token.expand(x.shape[0], -1, -1), x], dim=1)
