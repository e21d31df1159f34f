"""Datasets made of image files: image folders (PATH/<class>/<image>, or PATH/train/, val/,
test/ as the splits) and any torchvision VisionDataset that yields (image, label), each decoded
once into the image cache (archspec/train/cache.py). Each returns the cached images, the
labels, the class names and, where the dataset has its own splits, each sample's split."""

from __future__ import annotations

import inspect
import math
import os
from pathlib import Path

import numpy as np
import torch

from archspec.errors import SearchError
from archspec.images import IMAGE_MODES
from archspec.text import shown
from archspec.train.cache import ShardedImages, cache_root, content_key, decoded, file_stats
from archspec.train.config import Data

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
TRAIN, VAL, TEST = 0, 1, 2  # a sample's split, where the dataset has its own
# a folder with these sub-folders holds its own splits (the ImageNet layout)
SPLIT_FOLDERS = {"train": TRAIN, "val": VAL, "test": TEST}


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and _visible(p))


def _image_files(folder: Path) -> list[Path]:
    """Image files under `folder`, sorted, skipping hidden files and anything in hidden folders
    (.ipynb_checkpoints, .DS_Store, ...)."""
    found = []
    for parent, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # never entered
        found += [
            Path(parent, name)
            for name in names
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES
        ]
    return sorted(found)


def imagefolder(
    root: Path, cfg: Data
) -> tuple[ShardedImages, torch.Tensor, list[str], np.ndarray | None]:
    """root/<class>/<image> (torchvision's ImageFolder layout), or root/train/<class>/<image>
    with root/val/ (and optionally root/test/) as the splits; classes in sorted order."""
    if not root.is_dir():
        raise SearchError(f"data.dataset: imagefolder {str(root)!r} is not a folder")
    top = _class_folders(root)
    split_layout = "train" in top and "val" in top and set(top) <= set(SPLIT_FOLDERS)
    if split_layout:
        classes = _class_folders(root / "train")
        parts = [(root / part, SPLIT_FOLDERS[part]) for part in sorted(top, key=SPLIT_FOLDERS.get)]
    else:
        classes = top
        parts = [(root, None)]
    files: list[tuple[Path, int, int | None]] = []
    for folder, group in parts:
        found = _class_folders(folder)
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise SearchError(
                f"data.dataset: {folder}: class folder {unknown[0]!r} is not in "
                f"{root / 'train'} (classes come from train/)"
            )
        for label, cls in enumerate(classes):
            if (folder / cls).is_dir():
                files += [(f, label, group) for f in _image_files(folder / cls)]
    for cls in classes:  # bundles keep class names as text: refuse before any training
        try:
            cls.encode("utf-8")
        except UnicodeEncodeError:
            raise SearchError(
                f"data.dataset: class folder {shown(root / cls)}: its name is not UTF-8 text; "
                "rename it (class names are stored in bundles)"
            ) from None
    if len(classes) < 2 or not files:
        raise SearchError(
            f"data.dataset: {str(root)!r} needs one sub-folder of images per class (found "
            f"{len(classes)} classes, {len(files)} images)"
        )
    labels = np.array([label for _, label, _ in files], dtype=np.int64)
    groups = np.array([g for *_, g in files], dtype=np.int64) if split_layout else None
    _check_class_sizes(root, classes, labels, groups, cfg)
    size = (cfg.image_size, cfg.image_size)
    paths = [f for f, _, _ in files]
    key = content_key(
        {
            "kind": "imagefolder",
            "root": str(root.resolve()),
            "files": file_stats(paths, root),
            "labels": labels.tolist(),
            "load_size": size,
        }
    )

    def decode(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        images = np.empty((stop - start, 3, *size), dtype=np.uint8)
        for i in range(start, stop):
            images[i - start] = _decode_file(paths[i], size)
        return images, labels[start:stop]

    cache = decoded(cache_root(cfg.cache), key, len(paths), decode, desc=f"decoding {root}")
    return cache.images, torch.from_numpy(cache.labels), classes, groups


def _decode_file(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(3, H, W) uint8: the image converted to RGB and resized with Pillow, through the one
    image loader predict uses too (regular files only, Pillow's limits, one line per fault)."""
    from archspec.errors import ImageError
    from archspec.images import read_image

    try:
        return read_image(path, "RGB", size).transpose(2, 0, 1)
    except ImageError as exc:
        raise SearchError(f"data.dataset: {exc.message}") from None


def _check_class_sizes(
    root: Path, classes: list[str], labels: np.ndarray, groups: np.ndarray | None, cfg: Data
) -> None:
    """Every class needs an image in each part the split carves (a stratified split cannot give
    a class with fewer images one in every part)."""
    if groups is None:
        pool = labels
        fractions = [cfg.val_fraction, cfg.test_fraction, 1 - cfg.val_fraction - cfg.test_fraction]
        where = str(root)
    else:
        pool = labels[groups == TRAIN]
        fractions = [1.0]
        if not (groups == TEST).any():  # the test part is carved from train/
            fractions = [cfg.test_fraction, 1 - cfg.test_fraction]
        where = str(root / "train")
    need = math.ceil(1 / min(fractions) - 1e-9)
    counts = np.bincount(pool, minlength=len(classes))
    label = int(np.argmin(counts))  # the first of the smallest classes
    have = int(counts[label])
    if have < need:
        raise SearchError(
            f"data.dataset: {where}: class {classes[label]!r} has {have} "
            f"image{'s' * (have != 1)}; the split needs at least {need} per class "
            "(one in each part)"
        )


def torchvision_dataset(
    name: str, cfg: Data
) -> tuple[ShardedImages, torch.Tensor, list[str] | None, np.ndarray]:
    """Any torchvision VisionDataset that yields (image, label), through one path: each split
    it has (train, val, test: `train=` or `split=`) decoded into the image cache."""
    try:
        import torchvision.datasets as datasets
    except ImportError as exc:
        raise SearchError("data.dataset: torchvision datasets need torchvision installed") from exc
    cls = getattr(datasets, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, datasets.VisionDataset)):
        raise SearchError(f"data.dataset: torchvision has no dataset {name!r}")
    parts = _torchvision_splits(cls, name, cfg)
    offsets = np.cumsum([0] + [len(ds) for _, ds in parts])
    groups = np.concatenate([np.full(len(ds), g, dtype=np.int64) for g, ds in parts])
    first = parts[0][1][0][0]
    mode = "L" if getattr(first, "mode", "RGB") in ("1", "L") else "RGB"
    if "image_size" in cfg.model_fields_set:
        size = (cfg.image_size, cfg.image_size)
    else:
        size = _to_pil(first, name).size[::-1]
    root = Path(cfg.root)
    key = content_key(
        {
            "kind": "torchvision",
            "name": name,
            "root": str(root.resolve()),
            "files": file_stats(_image_files_any(root), root),
            "splits": [(g, len(ds)) for g, ds in parts],
            "mode": mode,
            "load_size": size,
        }
    )

    def decode(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        channels = 1 if mode == "L" else 3
        images = np.empty((stop - start, channels, *size), dtype=np.uint8)
        labels = np.empty(stop - start, dtype=np.int64)
        for i in range(start, stop):
            part = int(np.searchsorted(offsets, i, side="right")) - 1
            item = parts[part][1][i - offsets[part]]
            if not (isinstance(item, tuple) and len(item) == 2 and _is_label(item[1])):
                raise SearchError(f"data.dataset: {name} does not yield (image, label) pairs")
            img = _to_pil(item[0], name).convert(mode)
            if img.size != (size[1], size[0]):
                from PIL import Image

                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(img)
            images[i - start] = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
            labels[i - start] = int(item[1])
        return images, labels

    cache = decoded(cache_root(cfg.cache), key, int(offsets[-1]), decode, desc=f"decoding {name}")
    classes = getattr(parts[0][1], "classes", None)
    names = [str(c) for c in classes] if classes else None
    if names is not None and int(cache.labels.max()) >= len(names):
        names = None
    return cache.images, torch.from_numpy(cache.labels), names, groups


def _torchvision_splits(cls, name: str, cfg: Data) -> list[tuple[int, object]]:
    """(group, dataset) for each split the class has: `train=True/False`, or `split=` with
    train, val and test (those it accepts)."""
    params = inspect.signature(cls).parameters
    if "train" in params:
        wanted = [(TRAIN, {"train": True}), (TEST, {"train": False})]
    elif "split" in params:
        wanted = [(TRAIN, {"split": "train"}), (VAL, {"split": "val"}), (TEST, {"split": "test"})]
    else:
        wanted = [(TRAIN, {})]
    extra = {"download": cfg.download} if "download" in params else {}
    parts = []
    for group, kwargs in wanted:
        try:
            parts.append((group, cls(cfg.root, **kwargs, **extra)))
        except ValueError:  # torchvision's verify_str_arg: the class has no such split
            if group == TRAIN:
                raise SearchError(f"data.dataset: {name} has no train split") from None
        except (RuntimeError, OSError) as exc:
            hint = "" if cfg.download else "; set data.download: true to fetch it"
            raise SearchError(
                f"data.dataset: {name} not found under {cfg.root!r}{hint} ({exc})"
            ) from exc
    if not len(parts[0][1]):
        raise SearchError(f"data.dataset: {name}'s train split is empty")
    return parts


def _image_files_any(root: Path) -> list[Path]:
    """Every file under a torchvision root (what its images are read from), sorted."""
    if not root.is_dir():
        return []
    return sorted(Path(d) / f for d, _, names in os.walk(root) for f in names)


def _is_label(value) -> bool:
    return isinstance(value, (int, np.integer)) or (
        isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point()
    )


def _to_pil(image, name: str):
    from PIL import Image

    if isinstance(image, Image.Image):
        if image.mode not in IMAGE_MODES:
            raise SearchError(f"data.dataset: {name}: image mode {image.mode} is not 8-bit")
        return image
    array = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.dtype != np.uint8:
        raise SearchError(f"data.dataset: {name} yields {array.dtype} images, not 8-bit ones")
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)  # (C, H, W) tensors
    return Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1 else array)
