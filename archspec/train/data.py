"""Datasets for search trials: loaded once, split once into train, validation and a held-out
test part (stratified, seeded), kept whole in memory as tensors and resized to each
candidate's resolution with torch interpolation. Trials are selected on validation; the test
part is read only by the final re-evaluation."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from archspec.errors import SearchError
from archspec.images import IMAGE_MODES
from archspec.preprocess import Preprocessing, prepare
from archspec.train.config import Data
from archspec.train.shapes import CLASS_NAMES as SHAPES_CLASSES
from archspec.train.shapes import make_shapes

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Split:
    """Train, validation and test tensors at one resolution, normalized, on one device.
    x: (N, C, H, W) float32; y: (N,) int64. `preprocessing` made them from the images."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    preprocessing: Preprocessing


class Dataset:
    """All images of a dataset at their native size, with one fixed train/validation/test
    split."""

    def __init__(self, name: str, images: torch.Tensor, labels: torch.Tensor, cfg: Data, seed: int):
        # images: (N, C, H, W), uint8 (0..255) or float (0..1); labels: (N,)
        self.name = name
        self.images = images
        self.labels = labels.long()
        self.num_classes = int(self.labels.max()) + 1
        self.class_names = [str(i) for i in range(self.num_classes)]
        self.load_size: tuple[int, int] | None = None  # image files: resized to this on loading
        self.train_idx, self.val_idx, self.test_idx = _stratified_split(self.labels, cfg, seed)
        self._cache: OrderedDict[tuple, Split] = OrderedDict()

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

    def split(self, size: tuple[int, int], channels: int, device: torch.device | str) -> Split:
        """The fixed split resized to `size` with `channels` channels, normalized by the
        training images' per-channel mean and std; the last few are cached."""
        key = (tuple(size), channels, str(device))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        x = prepare(self.images, channels, tuple(size))
        preprocessing = Preprocessing.fit(x[self.train_idx], self.load_size)
        x = preprocessing.normalize(x)
        split = Split(
            x[self.train_idx].to(device),
            self.labels[self.train_idx].to(device),
            x[self.val_idx].to(device),
            self.labels[self.val_idx].to(device),
            x[self.test_idx].to(device),
            self.labels[self.test_idx].to(device),
            preprocessing,
        )
        self._cache[key] = split
        while len(self._cache) > 4:
            self._cache.popitem(last=False)
        return split


def load_dataset(cfg: Data, seed: int = 0) -> Dataset:
    """The dataset a search definition names; never downloads unless `download: true`."""
    name = cfg.dataset
    classes, load_size = None, None
    if name == "digits":
        images, labels = _digits()
    elif name == "shapes":  # archspec/train/shapes.py: the same images for every study
        images, labels = make_shapes(cfg.num_samples, seed=0)
        classes = list(SHAPES_CLASSES)
    elif name == "synthetic":
        images, labels = _synthetic(cfg.num_samples, cfg.num_classes, seed)
    elif name.startswith("imagefolder:"):
        images, labels, classes = _imagefolder(Path(name.split(":", 1)[1]), cfg.image_size)
        load_size = (cfg.image_size, cfg.image_size)
    else:
        images, labels, classes = _torchvision(name.split(":", 1)[1], cfg)
    if cfg.limit is not None and cfg.limit < len(labels):
        keep = _stratified_subset(labels, cfg.limit, seed)
        images, labels = images[keep], labels[keep]
    dataset = Dataset(name, images, labels, cfg, seed)
    if classes is not None and len(classes) >= dataset.num_classes:
        dataset.class_names = list(classes[: dataset.num_classes])
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


def _imagefolder(root: Path, size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """root/<class>/<image>, classes in sorted order (torchvision's ImageFolder layout)."""
    from PIL import Image, UnidentifiedImageError

    if not root.is_dir():
        raise SearchError(f"data.dataset: imagefolder {str(root)!r} is not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = [
        (f, label)
        for label, cls in enumerate(classes)
        for f in sorted((root / cls).rglob("*"))
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if len(classes) < 2 or not files:
        raise SearchError(
            f"data.dataset: {str(root)!r} needs one sub-folder of images per class (found "
            f"{len(classes)} classes, {len(files)} images)"
        )
    images = torch.empty(len(files), 3, size, size, dtype=torch.uint8)
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as img:
                if img.mode not in IMAGE_MODES:  # 16-bit or float: convert() would clip it
                    raise SearchError(
                        f"data.dataset: {path}: image mode {img.mode} is not 8-bit (expected "
                        "L, RGB or another 8-bit mode); convert it first"
                    )
                rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        except (OSError, UnidentifiedImageError) as exc:
            raise SearchError(f"data.dataset: cannot read image {path}: {exc}") from exc
        images[i] = torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)
    return images, torch.tensor([label for _, label in files]), classes


def _torchvision(name: str, cfg: Data) -> tuple[torch.Tensor, torch.Tensor, list[str] | None]:
    """A torchvision dataset with .data and .targets (MNIST, FashionMNIST, CIFAR10, ...); its
    train split is split again into train and validation."""
    try:
        import torchvision.datasets as datasets
    except ImportError as exc:
        raise SearchError("data.dataset: torchvision datasets need torchvision installed") from exc
    cls = getattr(datasets, name, None)
    if cls is None:
        raise SearchError(f"data.dataset: torchvision has no dataset {name!r}")
    try:
        ds = cls(cfg.root, train=True, download=cfg.download)
    except RuntimeError as exc:
        hint = "" if cfg.download else "; set data.download: true to fetch it"
        raise SearchError(f"data.dataset: {name} not found under {cfg.root!r}{hint}") from exc
    data, targets = getattr(ds, "data", None), getattr(ds, "targets", None)
    if data is None or targets is None:
        raise SearchError(f"data.dataset: {name} does not expose .data and .targets")
    images = torch.as_tensor(np.asarray(data))
    if images.ndim == 3:  # (N, H, W) grayscale
        images = images.unsqueeze(1)
    elif images.shape[-1] in (1, 3):  # (N, H, W, C)
        images = images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
    classes = getattr(ds, "classes", None)
    return images.contiguous(), labels, [str(c) for c in classes] if classes else None


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
