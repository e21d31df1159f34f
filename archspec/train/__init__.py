"""Training one network, with or without a search: the configuration (`Data`, `Training`), the
datasets and the procedural `shapes` set, the loop, training a spec to completion in a run
folder (`archspec train`) and evaluating a bundle.

Modules: `config` (the `data:` and `training:` sections), `data` (datasets, split once),
`files` (image folders, torchvision datasets), `cache` (decoded images on disk), `stream`
(batches by index, prefetch, augmentation), `distributed` (--nproc),
`shapes` (the procedural demo set), `loop` (one training, read top to bottom), `fit` (a spec
trained to a bundle, resumable), `evaluate` (a bundle's accuracy). Nothing here imports
`archspec.search`.
"""

from archspec.train.config import Augment, Data, Training
from archspec.train.data import Dataset, Split, load_dataset
from archspec.train.evaluate import evaluate_bundle
from archspec.train.fit import FitResult, fit
from archspec.train.loop import (
    EpochStats,
    TrainResult,
    evaluate,
    evaluate_part,
    pick_device,
    train,
)

__all__ = [
    "Augment",
    "Data",
    "Dataset",
    "EpochStats",
    "FitResult",
    "Split",
    "TrainResult",
    "Training",
    "evaluate",
    "evaluate_bundle",
    "evaluate_part",
    "fit",
    "load_dataset",
    "pick_device",
    "train",
]
