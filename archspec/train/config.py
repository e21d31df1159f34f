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

from archspec.errors import unknown_message
from archspec.spec.model import PositiveInt


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


DATASET = re.compile(r"^(digits|shapes|synthetic|imagefolder:.+|torchvision:[A-Za-z0-9_]+)$")
# the in-memory demo sets; image folders and torchvision datasets are decoded into the image cache
DEMO_SETS = ("digits", "shapes", "synthetic")
MAX_LOAD_SIZE = 4096


class Data(_Strict):
    """`digits` (scikit-learn's bundled 8x8 digits, offline), `shapes` (procedural, 64x64, 32
    classes: archspec/train/shapes.py), `synthetic`, `imagefolder:PATH` (PATH/<class>/<image>,
    or PATH/train/<class>/<image> with PATH/val/ and optionally PATH/test/ as the splits;
    relative to the current folder) or `torchvision:NAME` (any torchvision VisionDataset that
    yields (image, label): MNIST, CIFAR10, Food101, Flowers102, ...; its official test split is
    the held-out test; downloads only with `download: true`). Image folders and torchvision
    datasets are decoded once into the image cache and streamed from it."""

    dataset: str = "digits"
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.2, description="held out for the final re-evaluation; never used to select"
    )
    limit: PositiveInt | None = Field(None, description="use at most this many samples")
    num_samples: PositiveInt = Field(2000, description="synthetic, shapes: number of images")
    num_classes: Annotated[int, Field(ge=2, le=1000)] = Field(10, description="synthetic only")
    image_size: Annotated[int, Field(ge=1, le=MAX_LOAD_SIZE)] = Field(
        64,
        description="imagefolder, torchvision: images are decoded into the cache at this size; "
        "default: the largest input the search or training can ask for (the base input scaled "
        "by the largest resolution multiplier, the compound family's included, times "
        "training.test_size_ratio)",
    )
    root: str = Field("data", description="torchvision: where the dataset lives")
    download: bool = False
    cache: str | None = Field(
        None,
        description="where decoded images are cached (default $ARCHSPEC_CACHE, else "
        "~/.cache/archspec/images)",
    )

    @field_validator("dataset")
    @classmethod
    def _known(cls, value: str) -> str:
        if not DATASET.match(value):
            raise ValueError(
                "dataset is one of digits, shapes, synthetic, imagefolder:PATH, torchvision:NAME"
            )
        if value.startswith("torchvision:"):
            name = value.partition(":")[2]
            known = torchvision_datasets()
            if known is not None and name not in known:
                raise ValueError(
                    f"torchvision:{name}: {unknown_message('torchvision dataset', name, known)}"
                )
        return value

    @property
    def known_size(self) -> tuple[int, int] | None:
        """(samples, classes) when known before loading: digits, shapes, synthetic."""
        if self.dataset == "digits":
            samples, classes = 1797, 10
        elif self.dataset == "shapes":
            from archspec.train.shapes import NUM_CLASSES

            samples, classes = self.num_samples, NUM_CLASSES
        elif self.dataset == "synthetic":
            samples, classes = self.num_samples, self.num_classes
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

    def at_load_size(self, size: int) -> Data:
        """This configuration with the image cache's load size chosen: `size` (the largest input
        side the caller can ask for) unless the user set `image_size`. Only image folders and
        torchvision datasets have a load size; the demo sets are returned as they are."""
        if self.dataset in DEMO_SETS or "image_size" in self.model_fields_set:
            return self
        return self.model_copy(update={"image_size": max(1, min(MAX_LOAD_SIZE, int(size)))})

    def recorded(self, samples: int, classes: int) -> dict:
        """What a bundle records: the fields that apply to this dataset, with its real sample
        and class counts (`samples`, `classes`; `Data.from_recorded` reads it back)."""
        record = self.model_dump(mode="json")
        if self.dataset not in ("shapes", "synthetic"):
            record.pop("num_samples")
        if self.dataset != "synthetic":
            record.pop("num_classes")
        if self.dataset in DEMO_SETS:
            for name in ("image_size", "root", "download", "cache"):
                record.pop(name)
        return record | {"samples": samples, "classes": classes}

    @classmethod
    def from_recorded(cls, record: dict) -> Data:
        return cls.model_validate({k: v for k, v in record.items() if k not in RECORD_ONLY})


RECORD_ONLY = ("samples", "classes")


class Augment(_Strict):
    """Training-time augmentation, applied per batch on the training device (validation and
    test images are never augmented): `crop` (random_resized: torchvision's RandomResizedCrop,
    scale 0.08-1, ratio 3/4-4/3, per image; center: the central 87.5%; none: the whole image),
    a horizontal `flip` with probability 0.5, a `policy` (TrivialAugmentWide, RandAugment per
    image), `mixup` and `cutmix` (their Beta alpha; 0: off; both: one of them per batch) and
    random `erasing` (its probability per image)."""

    crop: Literal["random_resized", "center", "none"] = "random_resized"
    flip: bool = True
    policy: Literal["none", "trivialaugment", "randaugment"] = "none"
    mixup: Annotated[float, Field(ge=0, le=10)] = 0.0
    cutmix: Annotated[float, Field(ge=0, le=10)] = 0.0
    erasing: Annotated[float, Field(ge=0, le=1)] = 0.0

    @property
    def is_identity(self) -> bool:
        return self == Augment(crop="none", flip=False)


def torchvision_datasets() -> list[str] | None:
    """The VisionDataset classes torchvision has (None: torchvision is not installed; the
    name is then refused when the dataset is loaded)."""
    try:
        import torchvision.datasets as datasets
    except ImportError:
        return None
    return [
        name
        for name in dir(datasets)
        if isinstance(getattr(datasets, name), type)
        and issubclass(getattr(datasets, name), datasets.VisionDataset)
        and name not in ("VisionDataset", "DatasetFolder", "ImageFolder", "FakeData")
    ]


class Training(_Strict):
    """The budget of one candidate: same for every trial, so results compare."""

    epochs: Annotated[int, Field(ge=1, le=10_000)] = 10
    batch_size: Annotated[int, Field(ge=1, le=65_536)] = 128
    optimizer: Literal["adamw", "sgd", "rmsprop"] = Field(
        "adamw", description="rmsprop: alpha 0.9 and TensorFlow's epsilon, as EfficientNet"
    )
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
    augment: Augment | None = Field(
        None,
        description="per-batch augmentation (default: random-resized crop and flip for image "
        "folders and torchvision datasets; none for digits, shapes and synthetic)",
    )
    ema: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        None,
        description="weight EMA decay (e.g. 0.9998; timm's ModelEmaV3 with warm-up): "
        "validation, test and bundles use the averaged weights",
    )
    clip_grad: Annotated[float, Field(gt=0)] | None = Field(
        None, description="clip the gradient norm to this"
    )
    compile: bool = Field(False, description="torch.compile the model for training")
    test_size_ratio: Annotated[float, Field(ge=1, le=4)] | None = Field(
        None,
        description="validate and test at this many times the input size (FixRes, e.g. 1.15); "
        "default: the input size",
    )
    log: list[Literal["csv", "tensorboard"]] = Field(
        default_factory=lambda: ["csv"],
        description="training curves: csv (metrics.csv of archspec train), tensorboard (event "
        "files: runs/STUDY/tb/trial-N, runs/train/NAME/tb; pip install 'archspec[tensorboard]')",
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    threads: Annotated[int, Field(ge=1, le=1024)] | None = Field(
        None, description="CPU threads for the search (default: torch's, one per core)"
    )


class Setup(_Strict):
    """What `archspec train` trains a spec with: the `data:` and `training:` sections (the
    command line's options and KEY=VALUE overrides, validated together)."""

    data: Data
    training: Training = Field(default_factory=Training)
