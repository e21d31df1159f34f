"""The data and training configuration shared by `archspec train` and search definitions: which
dataset, how it is split, and the recipe every candidate trains with."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from archspec.spec.model import PositiveInt


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


DATASET = re.compile(r"^(digits|shapes|synthetic|imagefolder:.+|torchvision:[A-Za-z0-9_]+)$")


# torchvision datasets with .data and .targets and a train split, and their class counts
TORCHVISION_CLASSES = {
    "MNIST": 10, "FashionMNIST": 10, "KMNIST": 10, "QMNIST": 10, "CIFAR10": 10, "CIFAR100": 100,
}  # fmt: skip


class Data(_Strict):
    """`digits` (scikit-learn's bundled 8x8 digits, offline), `shapes` (procedural, 64x64, 32
    classes: archspec/train/shapes.py), `synthetic`, `imagefolder:PATH`
    (PATH/<class>/<image>, relative to the current folder) or `torchvision:NAME` (MNIST,
    CIFAR10, ...: downloads only with `download: true`)."""

    dataset: str = "digits"
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.2, description="held out for the final re-evaluation; never used to select"
    )
    limit: PositiveInt | None = Field(None, description="use at most this many samples")
    num_samples: PositiveInt = Field(2000, description="synthetic, shapes: number of images")
    num_classes: Annotated[int, Field(ge=2, le=1000)] = Field(10, description="synthetic only")
    image_size: Annotated[int, Field(ge=1, le=4096)] = Field(
        64, description="imagefolder: images are loaded at this size"
    )
    root: str = Field("data", description="torchvision: where the dataset lives")
    download: bool = False

    @field_validator("dataset")
    @classmethod
    def _known(cls, value: str) -> str:
        if not DATASET.match(value):
            raise ValueError(
                "dataset is one of digits, shapes, synthetic, imagefolder:PATH, torchvision:NAME"
            )
        name = value.partition(":")[2]
        if value.startswith("torchvision:") and name not in TORCHVISION_CLASSES:
            raise ValueError(
                f"torchvision:{name} is not supported; use one of "
                + ", ".join(f"torchvision:{n}" for n in TORCHVISION_CLASSES)
            )
        return value

    @property
    def known_size(self) -> tuple[int, int] | None:
        """(samples, classes) when known before loading: digits, shapes, synthetic,
        torchvision."""
        if self.dataset == "digits":
            samples, classes = 1797, 10
        elif self.dataset == "shapes":
            from archspec.train.shapes import NUM_CLASSES

            samples, classes = self.num_samples, NUM_CLASSES
        elif self.dataset == "synthetic":
            samples, classes = self.num_samples, self.num_classes
        elif self.dataset.startswith("torchvision:"):
            samples, classes = 10**9, TORCHVISION_CLASSES[self.dataset.partition(":")[2]]
        else:
            return None
        return min(samples, self.limit or samples), classes

    @model_validator(mode="after")
    def _fractions(self) -> Data:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                f"val_fraction + test_fraction is {self.val_fraction + self.test_fraction:g}; "
                "leave at least 10% for training"
            )
        return self


class Training(_Strict):
    """The budget of one candidate: same for every trial, so results compare."""

    epochs: Annotated[int, Field(ge=1, le=10_000)] = 10
    batch_size: Annotated[int, Field(ge=1, le=65_536)] = 128
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: Annotated[float, Field(gt=0, le=10)] = 3e-3
    weight_decay: Annotated[float, Field(ge=0, le=10)] = 0.05
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    warmup_epochs: Annotated[int, Field(ge=0, le=1000)] = 0
    precise_bn: Annotated[int, Field(ge=0, le=1 << 20)] = Field(
        1024,
        description="re-estimate BatchNorm statistics on this many training images "
        "before each validation (0: off)",
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    threads: Annotated[int, Field(ge=1, le=1024)] | None = Field(
        None, description="CPU threads for the search (default: torch's, one per core)"
    )
