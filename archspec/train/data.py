"""Datasets for training and search trials: loaded once, split once into train, validation and a
held-out test part (stratified and seeded, or the dataset's own splits), and served to the loop
at each candidate's resolution.

Two ways to serve a split (archspec/train/stream.py): the demo sets (digits, shapes, synthetic)
without augmentation live whole on the device, resized and normalized once (today's fast path,
bit-identical results); image folders and torchvision datasets are decoded once into the on-disk
image cache (archspec/train/cache.py) and streamed from it batch by batch, so memory is bounded
by the batch and prefetch depth, not by the dataset. Trials are selected on validation; the test
part is read only by the final re-evaluation.
"""

from __future__ import annotations

import inspect
import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from archspec.errors import SearchError
from archspec.preprocess import IMAGE_MODES, Preprocessing, prepare
from archspec.train.cache import ShardedImages, cache_root, content_key, decoded, file_stats
from archspec.train.config import DEMO_SETS, Augment, Data, Training
from archspec.train.shapes import CLASS_NAMES as SHAPES_CLASSES
from archspec.train.shapes import make_shapes
from archspec.train.stream import BatchAugment, Part, ResidentPart, StreamedPart

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# a folder with these sub-folders holds its own splits (the ImageNet layout)
SPLIT_FOLDERS = {"train": 0, "val": 1, "test": 2}
TRAIN, VAL, TEST = 0, 1, 2
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
        images, labels, classes, groups = _imagefolder(Path(name.split(":", 1)[1]), cfg)
        load_size = tuple(images.shape[-2:])
    else:
        images, labels, classes, groups = _torchvision(name.split(":", 1)[1], cfg)
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


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and _visible(p))


def _image_files(folder: Path) -> list[Path]:
    """Image files under `folder`, sorted, skipping hidden files and anything in hidden folders
    (.ipynb_checkpoints, .DS_Store, ...)."""
    return sorted(
        f
        for f in folder.rglob("*")
        if f.suffix.lower() in IMAGE_SUFFIXES
        and all(_visible(p) for p in f.relative_to(folder).parents if p.name)
        and _visible(f)
        and f.is_file()
    )


def _imagefolder(
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
    """(3, H, W) uint8: the image converted to RGB and resized with Pillow (as `predict` loads
    an image file through the bundle's preprocessing)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode not in IMAGE_MODES:  # 16-bit or float: convert() would clip it
                raise SearchError(
                    f"data.dataset: {path}: image mode {img.mode} is not 8-bit (expected "
                    "L, RGB or another 8-bit mode); convert it first"
                )
            rgb = img.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    except (OSError, UnidentifiedImageError) as exc:
        raise SearchError(f"data.dataset: cannot read image {path}: {exc}") from exc
    return np.asarray(rgb).transpose(2, 0, 1)


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


def _torchvision(
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
