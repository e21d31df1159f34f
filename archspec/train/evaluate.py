"""A bundle's accuracy on a dataset: the held-out test split of the data it was trained on, or
the whole of another dataset with the same classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from archspec.bundle import Bundle
from archspec.errors import SearchError
from archspec.train.config import Data
from archspec.train.data import Dataset, load_dataset
from archspec.train.loop import MEMORY_FORMAT, evaluate_part, pick_device

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    images: int
    dataset: str
    split: str  # "test", "validation" or "all"


def evaluate_bundle(bundle: Bundle, data: Data | None = None) -> Evaluation:
    """Top-1 accuracy of a bundle with its recorded preprocessing: on the held-out split of the
    data it was trained on, or on every image of `data`. The recorded data is rebuilt by
    itself only for the sets archspec makes (digits, shapes, synthetic); an image folder or a
    torchvision dataset is read only when the user names it as `data` (then its held-out
    split, cut as in training, when it is the recorded one), never from a path or a download
    the bundle records."""
    device = pick_device()
    recorded = bundle.manifest.provenance
    # the user's copy of the files the bundle was trained on: its held-out split, cut as then
    same = (
        data is not None
        and data.dataset not in GENERATED
        and bool(recorded.data)
        and recorded.data.get("dataset") == data.dataset
    )
    if data is None or same:
        if recorded.data is None:
            raise SearchError(
                f"{bundle.path}: the bundle records no dataset; name one to evaluate on"
            )
        if same:  # the user's copy, split as the bundle's training split it
            given = {"root": data.root, "download": data.download, "cache": data.cache}
            data = Data.from_recorded({**recorded.data, **given})
        else:
            data = recorded_data(bundle)
        dataset = load_dataset(data, recorded.seed or 0)
        index, split = _held_out(dataset)
    else:  # another dataset: its images loaded at the size the bundle's training loaded
        load = bundle.manifest.preprocessing.load_size or bundle.manifest.preprocessing.size
        dataset = load_dataset(data.at_load_size(max(load)), recorded.seed or 0)
        index, split = torch.arange(len(dataset)), "all"
    _check_classes(bundle, dataset)
    # read in chunks through the bundle's preprocessing, on the device and in the memory layout
    # it was trained and validated in: the same numbers
    part = dataset.part(index, bundle.manifest.preprocessing, device)
    model = bundle.model.to(device=device, memory_format=MEMORY_FORMAT)
    accuracy = evaluate_part(model, part, device)
    return Evaluation(accuracy, len(index), dataset.name, split)


# datasets archspec makes itself (bundled or generated from a seed): safe to rebuild from what a
# bundle records; anything else names files or a download, which a bundle never chooses
GENERATED = ("digits", "shapes", "synthetic")


def recorded_data(bundle: Bundle) -> Data:
    """The bundle's recorded `data:` section, when it names a dataset archspec makes itself;
    a recorded image folder or torchvision dataset is refused (the user passes it, and any
    download, explicitly)."""
    from pydantic import ValidationError

    from archspec.text import shown

    recorded = bundle.manifest.provenance.data or {}
    name = recorded.get("dataset") if isinstance(recorded, dict) else None
    if name not in GENERATED:
        raise SearchError(
            f"{shown(bundle.path)}: trained on {shown(name, 200)!s}; a bundle never chooses "
            "files to read or a download: pass --data (a local copy) to evaluate on"
        )
    try:
        data = Data.from_recorded(recorded)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SearchError(
            f"{shown(bundle.path)}: provenance.data.{shown(where, 80)}: {shown(first['msg'])}"
        ) from None
    return data.model_copy(update={"download": False})


def _held_out(dataset: Dataset) -> tuple[torch.Tensor, str]:
    test = getattr(dataset, "test_idx", None)
    if test is not None and len(test):
        return test, "test"
    return dataset.val_idx, "validation"


def _check_classes(bundle: Bundle, dataset: Dataset) -> None:
    names = bundle.class_names
    if dataset.num_classes > len(names):
        raise SearchError(
            f"{dataset.name} has {dataset.num_classes} classes; the bundle's model has {len(names)}"
        )
    if dataset.class_names != names[: dataset.num_classes]:
        raise SearchError(
            f"{dataset.name}'s classes ({', '.join(dataset.class_names[:5])}...) are not the "
            f"bundle's ({', '.join(names[:5])}...)"
        )
