"""Datasets for training and search trials: loaded once, split once into train, validation and a
held-out test part (stratified and seeded, or the dataset's own splits), and served to the loop
at each candidate's resolution. Image folders and torchvision datasets are read by
archspec/train/files.py.

Two ways to serve a split (archspec/train/stream.py): the demo sets (digits, shapes, synthetic)
without augmentation live whole on the device, resized and normalized once (today's fast path,
bit-identical results); image folders and torchvision datasets are decoded once into the on-disk
image cache (archspec/train/cache.py) and streamed from it batch by batch, so memory is bounded
by the batch and prefetch depth, not by the dataset. Trials are selected on validation; the test
part is read only by the final re-evaluation.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from archspec.errors import SearchError
from archspec.preprocess import Preprocessing, prepare
from archspec.train.cache import ShardedImages
from archspec.train.config import DEMO_SETS, Augment, Data, Training
from archspec.train.files import TEST, TRAIN, VAL, imagefolder, torchvision_dataset
from archspec.train.shapes import CLASS_NAMES as SHAPES_CLASSES
from archspec.train.shapes import make_shapes
from archspec.train.stream import BatchAugment, Part, ResidentPart, StreamedPart

STATS_IMAGES = 2048  # streamed datasets: normalization mean/std from this many training images


@dataclass(frozen=True)
class Split:
    """Train, validation and test parts at one resolution on one device, and the preprocessing
    (channels, size, mean/std) that turns an image into the model's input."""

    train: Part
    val: Part
    test: Part
    preprocessing: Preprocessing

    # whole tensors (unaugmented model inputs, labels), for small parts read in one go
    train_x = property(lambda self: self.train.materialize()[0])
    train_y = property(lambda self: self.train.y)
    val_x = property(lambda self: self.val.materialize()[0])
    val_y = property(lambda self: self.val.y)
    test_x = property(lambda self: self.test.materialize()[0])
    test_y = property(lambda self: self.test.y)


class Dataset:
    """All images of a dataset with one fixed train/validation/test split. `images` is an
    in-memory (N, C, H, W) tensor (the demo sets: uint8 or float in [0, 1]) or the memory-mapped
    image cache (`ShardedImages`, uint8)."""

    def __init__(
        self,
        name: str,
        images: torch.Tensor | ShardedImages,
        labels: torch.Tensor,
        cfg: Data,
        seed: int,
        *,
        groups: np.ndarray | None = None,
        class_names: list[str] | None = None,
        rows: np.ndarray | None = None,
    ):
        # labels: (N,); groups: (N,) the dataset's own split of each sample (TRAIN, VAL, TEST);
        # rows: (N,) where each sample is in `images` (a `limit` subset of a cache)
        self.name = name
        self.images = images
        self.labels = labels.long()
        self.rows = rows
        self.num_classes = (
            len(class_names) if class_names is not None else int(self.labels.max()) + 1
        )
        self.class_names = class_names or [str(i) for i in range(self.num_classes)]
        self.load_size: tuple[int, int] | None = None  # image files: resized to this on loading
        self.streamed = isinstance(images, ShardedImages)
        self.train_idx, self.val_idx, self.test_idx = _split(self.labels, groups, cfg, seed)
        self._cache: OrderedDict[tuple, Split] = OrderedDict()
        self._stats: dict[tuple, Preprocessing] = {}

    def __len__(self) -> int:
        return len(self.labels)

    def __getstate__(self) -> dict:
        """Pickled (for a worker process) without the cached resized splits."""
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()
        return state

    @property
    def native_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])

    def default_augment(self) -> Augment | None:
        """Image folders and torchvision datasets: random-resized crop and flip; the demo sets
        keep their fixed tensors unless a recipe asks."""
        return Augment() if self.name not in DEMO_SETS else None

    def split(
        self,
        size: tuple[int, int],
        channels: int,
        device: torch.device | str,
        recipe: Training | None = None,
        eval_size: tuple[int, int] | None = None,
    ) -> Split:
        """The fixed split served at `size` with `channels` channels, normalized by the training
        images' per-channel mean and std; training batches augmented as `recipe.augment` says
        (default: `default_augment`); validation and test at `size` times
        `recipe.test_size_ratio` (or at `eval_size`). `preprocessing` is what validation and
        test read with, so a bundle records it. The last few are cached."""
        if recipe is None:  # evaluation only (bundles): no training batches are drawn
            augment = None
        else:
            augment = recipe.augment if recipe.augment is not None else self.default_augment()
        if augment is not None and augment.is_identity:
            augment = None
        ratio = recipe.test_size_ratio if recipe is not None else None
        if eval_size is None:
            eval_size = tuple(size) if ratio is None else tuple(round(s * ratio) for s in size)
        eval_size = tuple(eval_size)
        key = (tuple(size), channels, str(device), augment, eval_size)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if not self.streamed and augment is None:
            split = self._resident(tuple(size), eval_size, channels, torch.device(device))
        else:
            split = self._streamed(tuple(size), eval_size, channels, torch.device(device), augment)
        self._cache[key] = split
        while len(self._cache) > 4:
            self._cache.popitem(last=False)
        return split

    def part(self, index: torch.Tensor, preprocessing: Preprocessing, device) -> Part:
        """Samples `index` served unaugmented through `preprocessing` (a bundle's)."""
        return StreamedPart(
            self.images, self._rows_of(index), self.labels[index], preprocessing, device
        )

    def _resident(self, size, eval_size, channels, device) -> Split:
        x = prepare(self.images, channels, size)
        preprocessing = Preprocessing.fit(x[self.train_idx], self.load_size)
        x = preprocessing.normalize(x)
        if eval_size != size:
            ex = preprocessing.normalize(prepare(self.images, channels, eval_size))
        else:
            ex = x
        labels = self.labels
        return Split(
            ResidentPart(x[self.train_idx].to(device), labels[self.train_idx].to(device)),
            ResidentPart(ex[self.val_idx].to(device), labels[self.val_idx].to(device)),
            ResidentPart(ex[self.test_idx].to(device), labels[self.test_idx].to(device)),
            preprocessing.model_copy(update={"size": eval_size}),
        )

    def _streamed(self, size, eval_size, channels, device, augment) -> Split:
        preprocessing = self._preprocessing(size, channels)
        evaluation = preprocessing.model_copy(update={"size": eval_size})
        source = self.images
        train_aug = None
        if augment is not None:
            train_aug = BatchAugment(augment, preprocessing, self.num_classes)

        def part(index, transform, aug=None):
            return StreamedPart(
                source, self._rows_of(index), self.labels[index], transform, device, aug
            )

        return Split(
            part(self.train_idx, preprocessing, train_aug),
            part(self.val_idx, evaluation),
            part(self.test_idx, evaluation),
            evaluation,
        )

    def _rows_of(self, index: torch.Tensor) -> np.ndarray:
        index = index.numpy()
        return self.rows[index] if self.rows is not None else index

    def _preprocessing(self, size, channels) -> Preprocessing:
        """Mean and std of up to STATS_IMAGES training images (evenly spaced) at `size`."""
        key = (size, channels)
        if key not in self._stats:
            count = len(self.train_idx)
            pick = self.train_idx[np.linspace(0, count - 1, min(count, STATS_IMAGES)).astype(int)]
            rows = self._rows_of(pick)
            chunks = []
            for start in range(0, len(rows), 256):
                images = _gather(self.images, rows[start : start + 256])
                chunks.append(prepare(images, channels, size))
            self._stats[key] = Preprocessing.fit(torch.cat(chunks), self.load_size)
        return self._stats[key]


def _gather(images: torch.Tensor | ShardedImages, rows: np.ndarray) -> torch.Tensor:
    if isinstance(images, ShardedImages):
        return torch.from_numpy(images.gather(rows))
    return images[torch.from_numpy(np.asarray(rows))]


def load_dataset(cfg: Data, seed: int = 0) -> Dataset:
    """The dataset a search definition names; never downloads unless `download: true`."""
    name = cfg.dataset
    classes, load_size, groups = None, None, None
    if name == "digits":
        images, labels = _digits()
    elif name == "shapes":  # archspec/train/shapes.py: the same images for every study
        images, labels = make_shapes(cfg.num_samples, seed=0)
        classes = list(SHAPES_CLASSES)
    elif name == "synthetic":
        images, labels = _synthetic(cfg.num_samples, cfg.num_classes, seed)
    elif name.startswith("imagefolder:"):
        images, labels, classes, groups = imagefolder(Path(name.split(":", 1)[1]), cfg)
        load_size = tuple(images.shape[-2:])
    else:
        images, labels, classes, groups = torchvision_dataset(name.split(":", 1)[1], cfg)
        load_size = tuple(images.shape[-2:])
    rows = None
    if cfg.limit is not None and cfg.limit < len(labels):
        keep = _stratified_subset(labels, cfg.limit, seed)
        if isinstance(images, ShardedImages):  # the cache stays whole; the samples are a subset
            rows = keep.numpy()
        else:
            images = images[keep]
        labels = labels[keep]
        groups = groups[keep.numpy()] if groups is not None else None
    dataset = Dataset(name, images, labels, cfg, seed, groups=groups, class_names=classes,
                      rows=rows)  # fmt: skip
    dataset.load_size = load_size
    return dataset


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()  # bundled with scikit-learn: 1797 images, 8x8, values 0..16
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.tensor(digits.target, dtype=torch.int64)


def _synthetic(count: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable but not trivial: each class is a smooth random 3-channel pattern, each sample
    that pattern, randomly shifted, plus noise. 32x32."""
    gen = torch.Generator().manual_seed(seed)
    templates = F.interpolate(
        torch.rand(classes, 3, 6, 6, generator=gen),
        size=(40, 40),
        mode="bicubic",
        align_corners=False,
    )
    labels = torch.arange(count) % classes
    labels = labels[torch.randperm(count, generator=gen)]
    dy, dx = (torch.randint(0, 9, (count,), generator=gen) for _ in range(2))
    rows = dy[:, None] + torch.arange(32)[None, :]  # (N, 32)
    cols = dx[:, None] + torch.arange(32)[None, :]
    picked = templates[labels]  # (N, 3, 40, 40)
    images = picked[
        torch.arange(count)[:, None, None, None],
        torch.arange(3)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
    images = (images + 0.35 * torch.randn(images.shape, generator=gen)).clamp(0, 1)
    return images, labels


def _split(
    labels: torch.Tensor, groups: np.ndarray | None, cfg: Data, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train, validation, test) indices. Without the dataset's own splits: stratified, with
    val_fraction and test_fraction of the whole. With them: its validation and test splits,
    and those it lacks carved from its train split (stratified, the same fractions of it)."""
    y = labels.numpy()
    if groups is None:
        return _stratified_split(labels, cfg, seed)
    pool = np.nonzero(groups == TRAIN)[0]
    parts = {g: np.nonzero(groups == g)[0] for g in (VAL, TEST) if (groups == g).any()}
    for group, fraction in ((TEST, cfg.test_fraction), (VAL, cfg.val_fraction)):
        if group not in parts:
            pool, parts[group] = _carve(pool, y, fraction, seed)
    return tuple(torch.from_numpy(np.sort(p)) for p in (pool, parts[VAL], parts[TEST]))


def _carve(pool: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(pool, test_size=fraction, stratify=y[pool], random_state=seed)
    except ValueError as exc:
        raise SearchError(f"data: cannot split {len(pool)} training samples: {exc}") from exc


def _stratified_split(
    labels: torch.Tensor, cfg: Data, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train, validation, test) indices; val_fraction and test_fraction are of the whole."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    y = labels.numpy()
    try:
        rest, test = train_test_split(
            index, test_size=cfg.test_fraction, stratify=y, random_state=seed
        )
        train, val = train_test_split(
            rest,
            test_size=cfg.val_fraction / (1 - cfg.test_fraction),
            stratify=y[rest],
            random_state=seed,
        )
    except ValueError as exc:
        raise SearchError(f"data: cannot split {len(labels)} samples: {exc}") from exc
    return tuple(torch.from_numpy(np.sort(part)) for part in (train, val, test))


def _stratified_subset(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    try:
        keep, _ = train_test_split(
            index, train_size=count, stratify=labels.numpy(), random_state=seed
        )
    except ValueError as exc:  # fewer samples than classes, or a class with one sample
        message = f"data.limit: cannot keep {count} of {len(labels)} samples: {exc}"
        raise SearchError(message) from exc
    return torch.from_numpy(np.sort(keep))
