"""`shapes`: a procedural image dataset made from a seed in 1-2 seconds (synthetic, no
download), built so that each scaling axis has something to find. Each grayscale image
(native 64x64) holds a textured object and a plain bright disc, the anchor; its class
combines three factors (8 x 2 x 2 = 32 classes):

- the object's silhouette, one of KINDS, 22-28% of the image in radius, rotated at random
  (many distinct patterns: width);
- its texture, sinusoidal stripes or checks (the product of two perpendicular waves), with
  a period of 8-12.5% of the image (5-8 native pixels). The waves are band-limited, so a
  shrunk image keeps what its resolution can carry and no more: at the base's 16x16 (a
  quarter of native, where the antialiased resize keeps periods of about 8 native pixels
  and up) checks fade to a flat grey and only the coarsest stripes survive; at 22x22 most
  periods are seen, and at 32x32 all (fine detail: resolution);
- the side the anchor is on, left or right of the object, 33-58% of the image away centre to
  centre, at any height (layout: receptive field and depth).

Positions, sizes, angles, periods and phases are drawn per image; the background is dim
noise. Classes are balanced (count // classes images each, the remainder spread over the
first classes) and in a seeded random order; the same (count, seed, size) gives identical
tensors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

KINDS = ("disc", "square", "diamond", "triangle", "cross", "ring", "star", "bar")
TEXTURES = ("stripes", "checks")
LAYOUTS = ("anchor_left", "anchor_right")
NUM_CLASSES = len(KINDS) * len(TEXTURES) * len(LAYOUTS)
NATIVE_SIZE = 64
RADIUS = (0.22, 0.28)  # the object's, as a fraction of the image side
PERIOD = (0.08, 0.125)  # the texture's, as a fraction of the image side


# label = (kind * len(TEXTURES) + texture) * len(LAYOUTS) + layout
CLASS_NAMES = tuple(f"{k}/{t}/{a}" for k in KINDS for t in TEXTURES for a in LAYOUTS)


def make_shapes(
    count: int, seed: int, size: int = NATIVE_SIZE
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` images (N, 1, size, size) uint8 and their labels (N,) int64 in [0, NUM_CLASSES)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    labels = (torch.arange(count) % NUM_CLASSES)[torch.randperm(count, generator=gen)]
    kind, rest = labels // (len(TEXTURES) * len(LAYOUTS)), labels % (len(TEXTURES) * len(LAYOUTS))
    texture, layout = rest // len(LAYOUTS), rest % len(LAYOUTS)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, generator=gen)

    # geometry in native pixels: the object and the anchor side by side, never overlapping
    radius = uniform(*RADIUS) * size
    anchor_radius = uniform(0.07, 0.1) * size
    gap = radius + anchor_radius + uniform(0.04, 0.2) * size  # centre to centre, along x
    anchor_left = layout == 0
    left_r = torch.where(anchor_left, anchor_radius, radius)
    right_r = torch.where(anchor_left, radius, anchor_radius)
    x_left = left_r + torch.rand(count, generator=gen) * (size - left_r - right_r - gap)
    cx = torch.where(anchor_left, x_left + gap, x_left)
    ax = torch.where(anchor_left, x_left, x_left + gap)
    cy = radius + torch.rand(count, generator=gen) * (size - 2 * radius)
    ay = anchor_radius + torch.rand(count, generator=gen) * (size - 2 * anchor_radius)
    angle = uniform(0, 2 * math.pi)
    period = uniform(*PERIOD) * size
    phase = uniform(0, 1)
    tex_angle = uniform(0, math.pi)

    # each object is drawn in a square patch around it, then pasted: (N, P, P) work, not (N, H, W)
    patch = int(math.ceil(2 * RADIUS[1] * size)) + 3
    offsets = torch.arange(patch) - patch // 2  # pixel offsets from the patch centre

    pad = patch  # drawn on a padded canvas, so that no patch leaves it (nor overlaps itself)

    def paste(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Canvas rows and columns of the patch around (x, y), and its pixels' coordinates
        relative to (x, y)."""
        rows = pad + y.floor().long()[:, None] - patch // 2 + torch.arange(patch)  # (N, P)
        cols = pad + x.floor().long()[:, None] - patch // 2 + torch.arange(patch)
        dy = (y.floor() - y)[:, None, None] + offsets[None, :, None] + 0.5  # (N, P, 1)
        dx = (x.floor() - x)[:, None, None] + offsets[None, None, :] + 0.5  # (N, 1, P)
        return rows, cols, dx, dy

    def col(t: torch.Tensor) -> torch.Tensor:
        return t[:, None, None]

    image = torch.zeros(count, size + 2 * pad, size + 2 * pad)
    image[:, pad:-pad, pad:-pad] = 0.12 + 0.05 * torch.randn(count, size, size, generator=gen)
    at = torch.arange(count)[:, None, None]

    # the object: silhouette in its rotated frame, in units of its radius
    rows, cols, dx, dy = paste(cx, cy)
    cos, sin = col(angle.cos()), col(angle.sin())
    u, v = (dx * cos + dy * sin) / col(radius), (-dx * sin + dy * cos) / col(radius)
    mask = torch.zeros(count, patch, patch, dtype=torch.bool)
    for k, name in enumerate(KINDS):
        sel = kind == k
        if sel.any():
            mask[sel] = _silhouette(name, u[sel], v[sel])
    # its texture along a rotated axis t and the normal n, in periods
    tc, ts = col(tex_angle.cos()), col(tex_angle.sin())
    t = (dx * tc + dy * ts) / col(period) + col(phase)
    n = (-dx * ts + dy * tc) / col(period)
    # sinusoids, not hard-edged bands: band-limited, so that what a resolution cannot carry is
    # blurred away when the image is shrunk, instead of folding into coarse moire patterns
    wave_t, wave_n = torch.sin(2 * math.pi * t), torch.sin(2 * math.pi * n)
    stripes = 0.5 + 0.5 * wave_t
    checks = 0.5 + 0.5 * wave_t * wave_n
    pattern = torch.where(col(texture) == 0, stripes, checks)
    where = (at, rows[:, :, None], cols[:, None, :])
    image[where] = torch.where(mask, 0.25 + 0.6 * pattern, image[where])

    # the anchor: a plain bright disc
    rows, cols, dx, dy = paste(ax, ay)
    disc = dx * dx + dy * dy <= col(anchor_radius) ** 2
    where = (at, rows[:, :, None], cols[:, None, :])
    image[where] = torch.where(disc, torch.full_like(image[where], 0.95), image[where])
    image = image[:, pad:-pad, pad:-pad]
    pixels = (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return pixels[:, None], labels.long()


def _silhouette(name: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The unit-radius shape `name` at local coordinates (u, v)."""
    import torch

    r = torch.sqrt(u * u + v * v)
    if name == "disc":
        return r <= 1
    if name == "square":
        return torch.maximum(u.abs(), v.abs()) <= 0.8
    if name == "diamond":
        return u.abs() + v.abs() <= 1.05
    if name == "triangle":  # equilateral, circumradius 1
        return (v >= -0.5) & (v <= 1 - math.sqrt(3) * u.abs())
    if name == "cross":
        return ((u.abs() <= 0.33) & (v.abs() <= 1)) | ((v.abs() <= 0.33) & (u.abs() <= 1))
    if name == "ring":
        return (r <= 1) & (r >= 0.55)
    if name == "star":  # five points
        return r <= 0.55 + 0.45 * torch.cos(5 * torch.atan2(v, u))
    if name == "bar":
        return (u.abs() <= 1.05) & (v.abs() <= 0.38)
    raise ValueError(f"unknown shape {name!r}")


def write_image_folder(
    root: str | Path,
    count: int,
    *,
    size: int = NATIVE_SIZE,
    seed: int = 0,
    splits: dict[str, float] | None = None,
    suffix: str = ".jpg",
) -> Path:
    """The shapes set as an image folder (root/<class>/<n>.jpg, classes c00..c31), made in
    chunks so any count fits in memory; with `splits` ({"train": 0.8, "val": 0.2}),
    root/<split>/<class>/... in those proportions. For tests and benchmarks of image folders."""
    from PIL import Image

    root = Path(root)
    chunk = 4096
    cuts = None
    if splits:
        bounds = np.cumsum([0.0, *splits.values()]) / sum(splits.values()) * count
        edges = bounds.round().astype(int)
        cuts = list(zip(splits, edges[:-1], edges[1:], strict=True))
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        images, labels = make_shapes(n, seed=seed + start, size=size)
        for i in range(n):
            number = start + i
            folder = root
            if cuts is not None:
                folder = root / next(name for name, lo, hi in cuts if lo <= number < hi)
            folder = folder / f"c{int(labels[i]):02d}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i, 0].numpy()).save(folder / f"{number}{suffix}", quality=90)
    return root
