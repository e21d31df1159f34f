"""The torch code that ops build and torch has no class for: modules and forward functions.
Imported only when a network is built (op.build / op.emit), never by the spec or graph stages."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_ACT = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "hardswish": nn.Hardswish}
_GATE = {"sigmoid": nn.Sigmoid, "hardsigmoid": nn.Hardsigmoid}


class StdConv2dModule(nn.Conv2d):
    """A Conv2d whose weight is standardized per output channel over its fan-in (Weight
    Standardization, Qiao et al. 2019); state and forward as timm's StdConv2d (BiT)."""

    def __init__(self, *args, eps: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1),
            None,
            None,
            training=True,
            momentum=0.0,
            eps=self.eps,
        ).reshape_as(self.weight)
        return self._conv_forward(x, weight, self.bias)


class ScaledStdConv2dModule(nn.Conv2d):
    """A Conv2d whose weight is standardized per output channel over its fan-in, then scaled
    by gain * gamma / sqrt(fan-in) (NF-Nets' Scaled Weight Standardization, Brock et al.
    2021); state and forward as timm's ScaledStdConv2d."""

    def __init__(self, *args, gamma: float, eps: float, gain_init: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.scale = gamma * self.weight[0].numel() ** -0.5
        self.eps = eps
        self.gain = nn.Parameter(torch.full((self.out_channels, 1, 1, 1), gain_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1),
            None,
            None,
            weight=(self.gain * self.scale).view(-1),
            training=True,
            momentum=0.0,
            eps=self.eps,
        ).reshape_as(self.weight)
        return self._conv_forward(x, weight, self.bias)


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


class EcaModule(nn.Module):
    """x * gate(conv1d(mean_hw(x) as a sequence of channels)) (ECA-Net, Wang et al. 2020);
    state and forward as timm's EcaModule."""

    def __init__(self, kernel_size: int, gate: str):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.gate = _GATE[gate]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3)).view(x.shape[0], 1, -1)  # (N, 1, C)
        return x * self.gate(self.conv(y)).view(x.shape[0], -1, 1, 1)


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


# --- channel groups and spatial indexing ------------------------------------------------------


def channel_shuffle(x: torch.Tensor, groups: int, dim: int) -> torch.Tensor:
    """ShuffleNet's shuffle (Zhang et al. 2018): view the channels as (groups, C/groups),
    transpose to (C/groups, groups), flatten back."""
    shape = list(x.shape)
    channels = shape[dim]
    split = shape[:dim] + [groups, channels // groups] + shape[dim + 1 :]
    return x.reshape(split).transpose(dim, dim + 1).reshape(shape)


# --- Swin's windowed attention (Liu et al. 2021, "Swin Transformer") --------------------------


def window_partition(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """(N, H, W, C) -> (N * windows, wh * ww, C); H and W are multiples of the window."""
    n, h, w, c = x.shape
    wh, ww = window
    x = x.view(n, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, c)


def window_merge(x: torch.Tensor, window: tuple[int, int], h: int, w: int) -> torch.Tensor:
    """The inverse of window_partition: (N * windows, wh * ww, C) -> (N, H, W, C)."""
    wh, ww = window
    c = x.shape[-1]
    x = x.view(-1, h // wh, w // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def attention_bias_index(resolution: tuple[int, int], stride: int = 1) -> torch.Tensor:
    """(queries, h*w) index into LeViT's (heads, h*w) bias table: |dy| * w + |dx| between each
    query (every stride-th row and column of the h x w grid) and each key (every position)."""
    h, w = resolution
    ky, kx = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)
    rows, cols = torch.arange(0, h, stride), torch.arange(0, w, stride)
    qy, qx = rows.repeat_interleave(len(cols)), cols.repeat(len(rows))
    return (qy[:, None] - ky[None, :]).abs() * w + (qx[:, None] - kx[None, :]).abs()


def relative_position_index(window: tuple[int, int]) -> torch.Tensor:
    """(wh*ww * wh*ww,) index into the (2wh-1)*(2ww-1) bias table for every pair of tokens of a
    window: row offset (dy + wh - 1) times (2ww - 1) plus column offset (dx + ww - 1)."""
    wh, ww = window
    rows = torch.arange(wh).repeat_interleave(ww)  # token t sits at (t // ww, t % ww)
    cols = torch.arange(ww).repeat(wh)
    dy = rows[:, None] - rows[None, :] + wh - 1
    dx = cols[:, None] - cols[None, :] + ww - 1
    return (dy * (2 * ww - 1) + dx).flatten()


def relative_coords_table(window: tuple[int, int]) -> torch.Tensor:
    """(1, 2wh-1, 2ww-1, 2) Swin V2's log-spaced relative coordinates (Liu et al. 2022, eq. 4):
    offsets scaled to [-8, 8], then sign(x) * log2(1 + |x|) / 3, the input of its bias MLP."""
    wh, ww = window
    dy = torch.arange(-(wh - 1), wh, dtype=torch.float32) / max(wh - 1, 1)
    dx = torch.arange(-(ww - 1), ww, dtype=torch.float32) / max(ww - 1, 1)
    table = torch.stack(torch.meshgrid(dy, dx, indexing="ij"), dim=-1).unsqueeze(0) * 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / 3.0


def shift_mask(
    h: int, w: int, window: tuple[int, int], shift: tuple[int, int], like: torch.Tensor
) -> torch.Tensor:
    """(windows, wh*ww, wh*ww) additive mask for shifted windows: after the cyclic shift a
    window may hold pixels from up to 3x3 regions that were not neighbours; attention between
    different regions gets -100 (as in the paper's code), within a region 0."""

    def regions(size: int, win: int, sh: int) -> torch.Tensor:
        index = torch.arange(size, device=like.device)
        if sh == 0:  # no shift along this axis: nothing wraps
            return torch.zeros_like(index)
        return (index >= size - win).long() + (index >= size - sh).long()

    region = regions(h, window[0], shift[0])[:, None] * 3 + regions(w, window[1], shift[1])
    tokens = window_partition(region[None, :, :, None].to(like.dtype), window).squeeze(-1)
    different = tokens[:, None, :] != tokens[:, :, None]
    return torch.where(different, -100.0, 0.0).to(like.dtype)


class ShiftedWindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows of an (N, H, W, C) tensor, with
    a learned relative position bias per head; `shift` > 0 rolls the windows by that much first
    (and back after), masking attention across the wrap. The input is zero-padded to whole
    windows and cropped back. `cosine` and `position_bias="mlp"` are Swin V2's cosine attention
    and continuous position bias. Parameter and buffer names are torchvision's."""

    def __init__(
        self,
        channels: int,
        window: tuple[int, int],
        shift: tuple[int, int],
        num_heads: int,
        qkv_bias: bool,
        proj_bias: bool,
        attention_dropout: float,
        dropout: float,
        cosine: bool = False,
        position_bias: str = "table",
        bias_hidden: int = 512,
        persistent_index: bool = True,
    ):
        super().__init__()
        self.window, self.shift, self.num_heads = window, shift, num_heads
        self.attention_dropout, self.dropout = attention_dropout, dropout
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.proj = nn.Linear(channels, channels, bias=proj_bias)
        if position_bias == "mlp":
            self.register_buffer("relative_coords_table", relative_coords_table(window))
        else:
            table = torch.zeros((2 * window[0] - 1) * (2 * window[1] - 1), num_heads)
            self.relative_position_bias_table = nn.Parameter(nn.init.trunc_normal_(table, std=0.02))
        index = relative_position_index(window)
        self.register_buffer("relative_position_index", index, persistent=persistent_index)
        self.cosine, self.position_bias = cosine, position_bias
        if cosine:  # per-head temperature, initialised to log(10) as in torchvision
            self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), 10.0).log())
        if position_bias == "mlp":
            self.cpb_mlp = nn.Sequential(
                nn.Linear(2, bias_hidden),
                nn.ReLU(inplace=True),
                nn.Linear(bias_hidden, num_heads, bias=False),
            )

    def relative_position_bias(self) -> torch.Tensor:
        """(1, heads, wh*ww, wh*ww), added to every window's attention logits."""
        tokens = self.window[0] * self.window[1]
        if self.position_bias == "mlp":
            table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        else:
            table = self.relative_position_bias_table
        bias = table[self.relative_position_index]
        bias = bias.view(tokens, tokens, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        return 16 * torch.sigmoid(bias) if self.position_bias == "mlp" else bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, c = x.shape
        wh, ww = self.window
        x = F.pad(x, (0, 0, 0, -w % ww, 0, -h % wh))
        ph, pw = x.shape[1], x.shape[2]
        # a window as large as the map sees all of it: no shift needed (as torchvision does)
        shift = (self.shift[0] if wh < ph else 0, self.shift[1] if ww < pw else 0)
        if any(shift):
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        windows = window_partition(x, self.window)  # (N * windows, tokens, C)
        batch, tokens, heads = windows.shape[0], windows.shape[1], self.num_heads
        bias = self.qkv.bias
        if self.cosine and bias is not None:  # V2 has no key bias
            bias = torch.cat([bias[:c], torch.zeros_like(bias[c : 2 * c]), bias[2 * c :]])
        qkv = F.linear(windows, self.qkv.weight, bias).reshape(batch, tokens, 3, heads, c // heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, N * windows, heads, tokens, C / heads)
        if self.cosine:
            q, k, v = F.normalize(qkv[0], dim=-1), F.normalize(qkv[1], dim=-1), qkv[2]
            scale = torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
            attn = q.matmul(k.transpose(-2, -1)) * scale
        else:
            q, k, v = qkv[0] * (c // heads) ** -0.5, qkv[1], qkv[2]
            attn = q.matmul(k.transpose(-2, -1))
        attn = attn + self.relative_position_bias()
        if any(shift):
            mask = shift_mask(ph, pw, self.window, shift, attn)
            count = mask.shape[0]
            attn = attn.view(batch // count, count, heads, tokens, tokens)
            attn = (attn + mask.unsqueeze(1).unsqueeze(0)).view(batch, heads, tokens, tokens)
        attn = F.dropout(F.softmax(attn, dim=-1), self.attention_dropout, self.training)
        out = attn.matmul(v).transpose(1, 2).reshape(batch, tokens, c)
        out = F.dropout(self.proj(out), self.dropout, self.training)
        x = window_merge(out, self.window, ph, pw)
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x[:, :h, :w, :].contiguous()

    def extra_repr(self) -> str:
        return f"window={self.window}, shift={self.shift}, num_heads={self.num_heads}"
