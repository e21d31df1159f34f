"""Serving one part of a split (train, validation or test) to the loop: batches by index in the
loop's seeded order, and chunks in order for BatchNorm recalibration and evaluation.

`ResidentPart`: the whole part lives on the device, resized and normalized (the demo sets' fast
path). `StreamedPart`: uint8 images are read by index from the memory-mapped image cache (or an
in-memory tensor) on a prefetch thread, moved to the device, then resized, augmented and
normalized there per batch; memory is bounded by the batch size and the prefetch depth.
`BatchAugment`: the training recipe's augmentation on a batch on the device (per-image crops
with torchvision's roi_align, torchvision transforms.v2 policies, MixUp/CutMix and erasing).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import torch

from archspec.preprocess import Preprocessing, resize, to_channels

if TYPE_CHECKING:
    from archspec.train.cache import ShardedImages
    from archspec.train.config import Augment

PREFETCH = 2  # batches read ahead of the one training
# NHWC everywhere. On GPU for tensor cores; on CPU because oneDNN's depthwise convolution is far
# faster in NHWC: forward + backward of a 64x64x6x6 depthwise 5x5 measured 2.9 ms NHWC against
# 13 ms NCHW on one core (torch 2.14, AMD EPYC), and regular convolutions were no slower.
MEMORY_FORMAT = torch.channels_last


class Part:
    """One part of a split: `y` (N,) labels on the device."""

    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def batches(
        self,
        indices: list[torch.Tensor],
        generator: torch.Generator | None = None,
        share: tuple[int, int] = (0, 1),
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) for each index tensor in turn: training batches (augmented, when the part
        has an augmentation; y then may be soft labels (B, classes)). `generator` draws the
        augmentation (default: torch's global one); `share` = (rank, world): the indices are
        this process's share of a global batch `world` times larger, and the augmentation is
        drawn for the whole global batch, so N processes see what one process sees."""
        raise NotImplementedError

    def chunks(
        self, size: int, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) in order, `size` at a time, never augmented; the first `limit` only."""
        raise NotImplementedError

    def materialize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole part as two tensors (for small parts)."""
        pieces = list(self.chunks(1024))
        if not pieces:
            return torch.empty(0), self.y
        return torch.cat([x for x, _ in pieces]), self.y


class ResidentPart(Part):
    """x: (N, C, H, W) model inputs, already resized and normalized, on the device."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x = x.contiguous(memory_format=MEMORY_FORMAT)
        self.y = y

    def batches(self, indices, generator=None, share=(0, 1)):
        for idx in indices:
            yield self.x[idx], self.y[idx]

    def chunks(self, size, limit=None):
        x, y = (self.x, self.y) if limit is None else (self.x[:limit], self.y[:limit])
        yield from zip(x.split(size), y.split(size), strict=True)

    def materialize(self):
        return self.x, self.y


class StreamedPart(Part):
    """Images read from `source` at `rows`; `transform` (a Preprocessing record) prepares them,
    or `augment` (training) does. y: (N,) labels."""

    def __init__(
        self,
        source: torch.Tensor | ShardedImages,
        rows: np.ndarray,
        y: torch.Tensor,
        transform: Preprocessing,
        device: torch.device | str,
        augment: BatchAugment | None = None,
    ):
        self.source, self.rows = source, np.asarray(rows)
        self.device = torch.device(device)
        self.y = y.to(self.device)
        self.transform, self.augment = transform, augment

    def batches(self, indices, generator=None, share=(0, 1)):
        positions = [idx.cpu().numpy() for idx in indices]
        for idx, images in zip(indices, self._read(positions), strict=True):
            y = self.y[idx.to(self.device)]
            if self.augment is not None:
                x, y = self.augment(images, y, generator, share)
            else:
                x = self.transform(images)
            yield x.contiguous(memory_format=MEMORY_FORMAT), y

    def chunks(self, size, limit=None):
        count = len(self.rows) if limit is None else min(limit, len(self.rows))
        positions = [np.arange(s, min(count, s + size)) for s in range(0, count, size)]
        for pos, images in zip(positions, self._read(positions), strict=True):
            x = self.transform(images).contiguous(memory_format=MEMORY_FORMAT)
            yield x, self.y[torch.from_numpy(pos).to(self.device)]

    def _read(self, positions: list[np.ndarray]) -> Iterator[torch.Tensor]:
        """The images at each array of positions, on the device; read PREFETCH ahead on a
        thread (reading the cache and copying does not hold the GIL for long)."""
        pin = self.device.type == "cuda"

        def read(pos: np.ndarray) -> torch.Tensor:
            rows = self.rows[pos]
            if isinstance(self.source, torch.Tensor):
                images = self.source[torch.from_numpy(rows)]
            else:
                images = torch.from_numpy(self.source.gather(rows))
            return images.pin_memory() if pin else images

        with ThreadPoolExecutor(1, thread_name_prefix="archspec-prefetch") as pool:
            pending: deque = deque()
            upcoming = iter(positions)
            for pos in upcoming:
                pending.append(pool.submit(read, pos))
                if len(pending) > PREFETCH:
                    break
            while pending:
                images = pending.popleft().result()
                nxt = next(upcoming, None)
                if nxt is not None:
                    pending.append(pool.submit(read, nxt))
                yield images.to(self.device, non_blocking=pin)


class BatchAugment:
    """The recipe's `augment` applied to a batch of images (B, C, H, W), uint8 or float in
    [0, 1], on their device: crop (per image) and resize to the preprocessing's size, flip,
    policy (per image), channels, normalization, erasing (per image), then MixUp or CutMix (per
    batch, soft labels). Random numbers come from one CPU generator (the training's, else
    torch's global one), drawn for the whole global batch when the batch is one process's share
    of it: a seeded training is reproducible, and N processes augment each image as one process
    does. Each image's policy and erasing, and each batch's MixUp/CutMix, run under a seed drawn
    from it. MixUp/CutMix pair images within each process's share of the batch, as timm's and
    torchvision's reference scripts do."""

    def __init__(self, augment: Augment, preprocessing: Preprocessing, num_classes: int):
        from torchvision.transforms import v2

        self.augment, self.preprocessing = augment, preprocessing
        self.size = tuple(preprocessing.size)
        self.policy = {
            "none": None,
            "trivialaugment": v2.TrivialAugmentWide(),
            "randaugment": v2.RandAugment(),
        }[augment.policy]
        self.erase = v2.RandomErasing(p=augment.erasing, value=0) if augment.erasing else None
        mixers = []
        if augment.mixup:
            mixers.append(v2.MixUp(alpha=augment.mixup, num_classes=num_classes))
        if augment.cutmix:
            mixers.append(v2.CutMix(alpha=augment.cutmix, num_classes=num_classes))
        self.mix = (
            None if not mixers else mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)
        )

    def __call__(
        self,
        images: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None = None,
        share: tuple[int, int] = (0, 1),
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(images)
        rank, world = share
        mine = slice(rank * n, (rank + 1) * n)  # this process's images of the global batch
        total = n * world

        def draw(*shape: int) -> torch.Tensor:  # uniform [0, 1) for the global batch, ours
            return torch.rand(total, *shape, generator=generator)[mine].to(images.device)

        def seeds() -> list[int]:
            drawn = torch.randint(2**62, (total,), generator=generator)[mine]
            return drawn.tolist()

        # (B, C, H, W) in [0, 1]
        x = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
        x = self._crop(x, draw)
        if self.augment.flip:
            flip = draw() < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.policy is not None:  # the policies' ops (posterize, equalize) want uint8
            pixels = (x * 255).round_().clamp_(0, 255).to(torch.uint8)
            x = torch.stack(_seeded(self.policy, pixels, seeds())).float() / 255
        x = to_channels(x, self.preprocessing.channels)
        mean, std = self._mean_std(x)
        x = (x - mean).div_(std)  # as Preprocessing.normalize, without a second temporary
        if self.erase is not None:
            x = torch.stack(_seeded(self.erase, x, seeds()))
        if self.mix is not None:
            batch_seed = int(torch.randint(2**62, (1,), generator=generator))
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(batch_seed)
                x, y = self.mix(x, y)
        return x, y

    def _mean_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (x.device, x.dtype)
        if getattr(self, "_stats_key", None) != key:
            shape = (1, -1, 1, 1)
            p = self.preprocessing
            self._stats = (
                torch.tensor(p.mean, dtype=x.dtype, device=x.device).view(shape),
                torch.tensor(p.std, dtype=x.dtype, device=x.device).view(shape),
            )
            self._stats_key = key
        return self._stats

    def _crop(self, x: torch.Tensor, draw) -> torch.Tensor:
        crop = self.augment.crop
        if crop == "none":
            return resize(x, self.size)
        from torchvision.ops import roi_align

        n, _, height, width = x.shape
        if crop == "center":
            side = 0.875
            box = torch.tensor(
                [width * (1 - side) / 2, height * (1 - side) / 2,
                 width * (1 + side) / 2, height * (1 + side) / 2],
                device=x.device,
            )  # fmt: skip
            boxes = box.expand(n, 4)
        else:
            boxes = random_resized_boxes(n, height, width, x.device, draw=draw)
        index = torch.arange(n, device=x.device, dtype=x.dtype)[:, None]
        # sampling_ratio=-1: each output pixel averages ceil(box/output) samples per side, an
        # area filter when the crop is larger than the output
        return roi_align(
            x, torch.cat([index, boxes], dim=1), self.size, sampling_ratio=-1, aligned=True
        )


def random_resized_boxes(
    n: int,
    height: int,
    width: int,
    device: torch.device,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    tries: int = 10,
    draw=None,
) -> torch.Tensor:
    """(n, 4) crop boxes (x1, y1, x2, y2) drawn as torchvision's RandomResizedCrop.get_params
    draws one (area fraction uniform in `scale`, log aspect uniform in `ratio`, the first of
    `tries` that fits, else the whole image), for n images at once, without rounding.
    `draw(*shape)`: (n, *shape) uniform [0, 1) numbers on `device` (default: torch.rand)."""
    if draw is None:

        def draw(*shape: int) -> torch.Tensor:
            return torch.rand(n, *shape, device=device)

    area = height * width
    target = area * (scale[0] + (scale[1] - scale[0]) * draw(tries))
    low, high = math.log(ratio[0]), math.log(ratio[1])
    log_ratio = low + (high - low) * draw(tries)
    aspect = log_ratio.exp()
    w = (target * aspect).sqrt()
    h = (target / aspect).sqrt()
    fits = (w <= width) & (h <= height)
    first = fits.float().argmax(dim=1)  # the first try that fits (0 when none does)
    pick = torch.arange(n, device=device)
    w, h, ok = w[pick, first], h[pick, first], fits[pick, first]
    w = torch.where(ok, w, torch.full_like(w, width))
    h = torch.where(ok, h, torch.full_like(h, height))
    x1 = draw() * (width - w)
    y1 = draw() * (height - h)
    return torch.stack([x1, y1, x1 + w, y1 + h], dim=1)


def _seeded(transform, images: torch.Tensor, seeds: list[int]) -> list[torch.Tensor]:
    """`transform` applied to each image with torch's CPU generator seeded by its seed (what
    torchvision's transforms draw from), leaving the global generator as it was."""
    out = []
    with torch.random.fork_rng(devices=[]):
        for image, seed in zip(images, seeds, strict=True):
            torch.default_generator.manual_seed(seed)
            out.append(transform(image))
    return out
