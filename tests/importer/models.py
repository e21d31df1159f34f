"""Small hand-written models for the importer tests (importable as tests.importer.models)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ScaledTanh(nn.Module):
    """alpha * tanh(x) with a learned alpha per channel: traced through, it is a parameter, a
    tanh and a mul."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((channels, 1, 1), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * torch.tanh(x)


class Unmappable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act1 = nn.ELU()  # a torch.nn module archspec has no op for
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.act2 = nn.ELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act2(self.conv2(self.act1(self.conv(x))))
        return torch.erf(x)


class Residual(nn.Module):
    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)) + x)


class Tiny(nn.Module):
    """A stem, a stage of three residual blocks, a head."""

    def __init__(self, num_classes: int = 10, act: str = "none"):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
        self.stage = nn.Sequential(*[Residual(16) for _ in range(3)])
        acts = {"scaled_tanh": lambda: ScaledTanh(16), "elu": nn.ELU, "none": nn.Identity}
        self.act = acts[act]()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stage(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def tiny(**kwargs) -> Tiny:
    return Tiny(**kwargs)


def unmappable() -> Unmappable:
    return Unmappable()


class Tokens(nn.Module):
    """A patch embedding, then the pieces of timm's ViT, ResMLP, LeViT and EfficientFormer
    blocks that need select, sdpa, a split along the head axis, broadcast adds and sub."""

    def __init__(self, dim: int = 16, heads: int = 2):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.embed = nn.Conv2d(3, dim, 4, stride=4)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.qkv2 = nn.Linear(dim, 3 * dim)
        self.ls = nn.Parameter(torch.full((dim,), 0.5))  # (C,) scale over (N, L, C) tokens
        self.beta = nn.Parameter(torch.full((1, 1, dim), 0.1))
        self.fc = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        x = self.pool(x) - x  # EfficientFormer's pooling mixer
        x = x.flatten(2).transpose(1, 2)
        b, n, c = x.shape
        h = self.heads
        q, k, v = self.qkv(x).reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4).unbind(0)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        q2, k2, v2 = self.qkv2(x).view(b, n, h, -1).split([self.head_dim] * 3, dim=3)  # LeViT
        a2 = q2.permute(0, 2, 1, 3) @ k2.permute(0, 2, 3, 1)
        a2 = a2.softmax(dim=-1) @ v2.permute(0, 2, 1, 3)
        x = x + self.ls * (a + a2).transpose(1, 2).reshape(b, n, c) + self.beta
        return self.fc(x.mean(1))


class Fuse(nn.Module):
    """HRNet's fuse layers in small: the forward sums the outputs of a list's entries as it
    calls them, one by one (the list is never called as a whole)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.fuse_layers = nn.ModuleList([nn.Conv2d(4, 4, 1) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = x
        for layer in self.fuse_layers:
            y = y + layer(x)
        return y


class Head(nn.Module):
    """HRNet's head in small: y = incre[i](x) + down[i - 1](y), so the parent's add runs between
    the entries of `down`, and `incre`'s entries are called between `down`'s."""

    def __init__(self) -> None:
        super().__init__()
        self.incre = nn.ModuleList([nn.Conv2d(3, 4, 1) for _ in range(3)])
        self.down = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(inplace=True)) for _ in range(2)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.incre[0](x)
        for i in range(1, 3):
            y = self.incre[i](x) + self.down[i - 1](y)
        return y


class OverwrittenBetween(nn.Module):
    """The fuse layers with an in-place op between the entries: the second entry must read the
    overwritten input, so it may not move before the overwrite."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.fuse_layers = nn.ModuleList([nn.Conv2d(4, 4, 1) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.fuse_layers[0](x)
        x.relu_()
        return y + self.fuse_layers[1](x)


class Hierarchical(nn.Module):
    """Res2Net's hierarchical convolutions in small: two module lists called in turn, entry by
    entry; each conv reads the previous entry's output plus the next split, so no reordering
    keeps either list's calls together (and `spx[-1]` passes through)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.convs = nn.ModuleList([nn.Conv2d(2, 2, 3, padding=1) for _ in range(3)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(2) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spx = torch.split(self.stem(x), 2, 1)
        out, sp = [], spx[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            if i:
                sp = sp + spx[i]
            sp = torch.relu(bn(conv(sp)))
            out.append(sp)
        return torch.cat([*out, spx[-1]], 1)


class LayerScales(nn.Module):
    """PoolFormer's layer scale, x * scale.view(C, 1, 1) on an image, and a scale viewed as
    (1, C) on tokens: parameters reshaped, whose axes are all their own (no batch axis)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.scale = nn.Parameter(torch.randn(4))
        self.token_scale = nn.Parameter(torch.randn(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x) * self.scale.view(4, 1, 1)
        return x.flatten(2).transpose(1, 2) * self.token_scale.view(1, 4)


class SelectiveKernel(nn.Module):
    """SKNet's and ResNeSt's split attention in small: paths stacked on a new axis 1, summed,
    pooled, a softmax over the paths, the weighted paths summed; a gate expanded to the
    image it multiplies (ECA's `x * y.expand_as(x)`)."""

    def __init__(self) -> None:
        super().__init__()
        self.paths = nn.ModuleList([nn.Conv2d(3, 4, k, padding=k // 2) for k in (1, 3)])
        self.fc = nn.Conv2d(4, 8, 1)
        self.gate = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.stack([path(x) for path in self.paths], dim=1)  # (N, 2, C, H, W)
        attn = self.fc(x.sum(1).mean((2, 3), keepdim=True))
        attn = torch.softmax(attn.view(x.shape[0], 2, 4, 1, 1), dim=1)
        x = torch.sum(x * attn, dim=1)
        return x * torch.sigmoid(self.gate(x.mean((2, 3), keepdim=True))).expand_as(x)


class GlobalContext(nn.Module):
    """GCNet's context in small (a softmax over the pixels, unsqueezed, as matmul weights) and
    GhostNet V2's gate, pooled, then brought back to the image's size by F.interpolate."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.Conv2d(4, 1, 1)
        self.short = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        weights = torch.softmax(self.attn(x).reshape(b, 1, h * w), dim=-1).unsqueeze(3)
        context = (x.reshape(b, c, h * w).unsqueeze(1) @ weights).view(b, c, 1, 1)
        gate = torch.sigmoid(self.short(F.avg_pool2d(x, 2, 2)))
        return (x + context) * F.interpolate(gate, size=(h, w), mode="nearest")


class SkipInit(nn.Module):
    """NF-Net's skipinit in small: a learned 0-dim gain multiplied in place into a tensor that
    the forward then reads again (`out.mul_(gain)`, then `out * alpha + shortcut`)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.skipinit_gain = nn.Parameter(torch.tensor(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        out.mul_(self.skipinit_gain)
        return out * 0.2 + x


class WholeImageAttention(nn.Module):
    """CoAtNet's attention over a whole image in small: sdpa of (N, heads, L, d) with a
    relative position bias, (1, heads, L, L), whose 1 is the batch axis, gathered by a flat
    index buffer kept out of the state_dict (timm's RelPosBias)."""

    def __init__(self) -> None:
        from archspec.ops.modules import relative_position_index

        super().__init__()
        self.qkv = nn.Conv2d(4, 12, 1)
        self.relative_position_bias_table = nn.Parameter(torch.randn(49, 2))
        index = relative_position_index((4, 4)).view(-1)
        self.register_buffer("relative_position_index", index, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = self.qkv(x).view(b, 2, 6, -1).chunk(3, dim=2)
        bias = self.relative_position_bias_table[self.relative_position_index]
        bias = bias.view(16, 16, -1).permute(2, 0, 1).unsqueeze(0).contiguous()
        q, k, v = (t.transpose(-1, -2).contiguous() for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return out.transpose(-1, -2).reshape(b, -1, h, w)


class SharedInside(nn.Module):
    """CoaT's shared position encoding in small: every block's forward calls one module that
    belongs to the model, not to the block."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Conv2d(3, 3, 3, padding=1, groups=3)
        self.blocks = nn.ModuleList([_Calls(self.pos) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class _Calls(nn.Module):
    def __init__(self, shared: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.shared = [shared]  # a plain list: the block does not own it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared[0](self.conv(x)) + x


class _Root(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 8, 1)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return self.conv(torch.cat(parts, 1))


class _Tree(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.downsample = nn.Identity()  # the same name as its parent's maxpool
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.root = _Root(24)

    def forward(self, x: torch.Tensor, children: list[torch.Tensor]) -> torch.Tensor:
        return self.root([self.conv(self.downsample(x)), *children])


class Dla(nn.Module):
    """DLA's aggregation: an inner group concatenates its parent's `downsample` (a name its own
    parent shadows) and its parent's input (which `input` cannot name in there)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.downsample = nn.MaxPool2d(2)
        self.tree1 = nn.Conv2d(8, 8, 3, padding=1)
        self.tree2 = _Tree()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        bottom = self.downsample(x)
        x1 = self.tree1(bottom)
        return self.tree2(x1, [bottom, x1])


class MaxVitLike(nn.Module):
    """torchvision's MaxViT layers in small: block then grid attention on a 4x4 map in 2x2
    partitions (einsum attention, a relative position bias looked up by a constant index)."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.maxvit import PartitionAttentionLayer

        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.layers = nn.Sequential(
            *[
                PartitionAttentionLayer(
                    16, 8, 2, kind, (4, 4), 2, nn.GELU, nn.LayerNorm, 0.0, 0.0, 0.1
                )
                for kind in ("window", "grid")
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))


class PadToPatches(nn.Module):
    """MobileViT's and Swin's size checks in small: the forward pads the map to a multiple of the
    patch size, resizes it when a rounded size differs and runs as many blocks as the width
    allows, all decided from `x.shape` (and its memory format), which torch.fx alone cannot
    trace."""

    def __init__(self, patch: int = 4):
        super().__init__()
        self.patch = patch
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.blocks = nn.ModuleList([Residual(8) for _ in range(2)])
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        if x.shape[-1] % self.patch:
            x = torch.nn.functional.pad(x, [0, self.patch - x.shape[-1] % self.patch])
        height = math.ceil(x.shape[-2] / self.patch) * self.patch
        if height != x.shape[-2]:  # not at the tested sizes: archspec has no resize op
            x = torch.nn.functional.interpolate(x, size=(height, x.shape[-1]), mode="bilinear")
        if not x.is_contiguous(memory_format=torch.channels_last):  # metadata, like the sizes
            x = x.contiguous()
        for i in range(x.size(-1) // 8):
            x = self.blocks[i](x)
        return self.fc(x.mean((2, 3)))


def pad_to_patches() -> PadToPatches:
    return PadToPatches()


class ValueBranch(nn.Module):
    """A forward that branches on the values of a tensor: one path for some inputs, another for
    the others, which no spec can say."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if x.mean() > 0:
            x = torch.relu(x)
        return x


def value_branch() -> ValueBranch:
    return ValueBranch()


class Checked(nn.Module):
    """A forward that checks its input is a tensor before it starts, as library code does: a
    torch.fx proxy is no tensor, so neither torch.fx trace gets past the check, and torch.export
    (which runs it on fake tensors, which are tensors) captures it. The body reads a parameter
    directly, slices channels and concatenates, besides calling modules."""

    def __init__(self, unmapped: bool = False) -> None:
        super().__init__()
        self.unmapped = unmapped
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(*[Residual(8) for _ in range(2)])
        self.scale = nn.Parameter(torch.full((8, 1, 1), 0.5))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a tensor, got {type(x).__name__}")
        x = self.blocks(self.stem(x))
        x = x * self.scale + x
        x = torch.cat([x, torch.sigmoid(x[:, :4])], 1)
        if self.unmapped:
            x = torch.erf(x)  # no archspec op
        return self.fc(torch.flatten(self.pool(x), 1))


def checked() -> Checked:
    return Checked()


def checked_unmapped() -> Checked:
    return Checked(unmapped=True)


class _Dense(nn.Module):
    """DenseNet's layer in small: takes one tensor or a list of them, concatenated."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)

    def forward(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        parts = [x] if torch.is_tensor(x) else list(x)
        return torch.relu(self.conv(torch.cat(parts, 1)))


class TensorOrList(nn.Module):
    """Layers that take a tensor or a list of tensors and tell them apart with
    `torch.is_tensor`: torch.fx takes its proxy for a list and cannot iterate it."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.layer1 = _Dense(4)
        self.layer2 = _Dense(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.layer1(x)
        return self.layer2([x, y])
