"""Any torchvision VisionDataset through one path: its official splits used as such (test held
out, validation carved from train unless it has one), class names from it, never a download
unless asked. The datasets here are small fakes made in the test."""

from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

from archspec.errors import SearchError
from archspec.train.config import Data
from archspec.train.data import load_dataset

tv = pytest.importorskip("torchvision.datasets")
from torchvision.datasets.utils import verify_str_arg  # noqa: E402


class Tiles(tv.VisionDataset):
    """`split=` style (as Food101, DTD): train and test, no val; a colour per class."""

    classes: ClassVar[list[str]] = ["red", "green", "blue", "grey"]
    splits = ("train", "test")
    downloads: ClassVar[list[bool]] = []

    def __init__(self, root, split="train", download=False, transform=None):
        super().__init__(root, transform=transform)
        self.split = verify_str_arg(split, "split", self.splits)
        Tiles.downloads.append(download)
        self.count = {"train": 200, "val": 40, "test": 60}[split]

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        label = i % 4
        offset = {"train": 0, "val": 1, "test": 2}[self.split]
        colour = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (90, 90, 90)][label]
        pixels = np.full((10, 14, 3), colour, dtype=np.uint8)
        pixels[0, 0] = (i % 256, offset, 0)  # which sample and split, for the test to read back
        return Image.fromarray(pixels), label


class TilesWithVal(Tiles):
    splits = ("train", "val", "test")


class Digitsish(tv.VisionDataset):
    """`train=` style (as MNIST, CIFAR10): grey images, labels as tensors."""

    def __init__(self, root, train=True, download=False):
        super().__init__(root)
        self.n = 120 if train else 40
        self.train = train

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return Image.new("L", (8, 8), 100 + 50 * self.train), torch.tensor(i % 3)


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    for cls in (Tiles, TilesWithVal, Digitsish):
        monkeypatch.setattr(tv, cls.__name__, cls, raising=False)
    Tiles.downloads.clear()


def test_official_test_split_is_the_held_out_test(tmp_path):
    data = load_dataset(Data(dataset="torchvision:Tiles", root=str(tmp_path)), seed=0)
    assert len(data) == 260 and data.class_names == Tiles.classes and data.num_classes == 4
    assert data.native_size == (10, 14)  # the first image's size: no resize
    assert Tiles.downloads == [False, False]  # never downloads unless asked
    test = data.images.gather(data.test_idx.numpy())
    assert len(data.test_idx) == 60 and (test[:, 1, 0, 0] == 2).all()  # all from split="test"
    train_val = data.images.gather(np.concatenate([data.train_idx, data.val_idx]))
    assert (train_val[:, 1, 0, 0] == 0).all()  # validation carved from train
    assert (len(data.train_idx), len(data.val_idx)) == (160, 40)  # val_fraction 0.2 of train
    assert torch.equal(data.labels[data.test_idx], torch.arange(60) % 4)


def test_an_official_validation_split_is_used(tmp_path):
    data = load_dataset(Data(dataset="torchvision:TilesWithVal", root=str(tmp_path)), seed=0)
    assert (len(data.train_idx), len(data.val_idx), len(data.test_idx)) == (200, 40, 60)
    assert (data.images.gather(data.val_idx.numpy())[:, 1, 0, 0] == 1).all()


def test_train_flag_datasets_and_image_size(tmp_path):
    cfg = Data(dataset="torchvision:Digitsish", root=str(tmp_path), image_size=12)
    data = load_dataset(cfg, seed=0)
    assert data.images.shape == (160, 1, 12, 12)  # grey stays one channel, resized
    assert len(data.test_idx) == 40 and data.class_names == ["0", "1", "2"]
    values = data.images.gather(data.test_idx.numpy())
    assert (values == 100).all()  # train=False


def test_a_dataset_that_is_absent_is_not_downloaded(tmp_path):
    with pytest.raises(SearchError, match=r"MNIST not found under .*set data\.download: true"):
        load_dataset(Data(dataset="torchvision:MNIST", root=str(tmp_path)), seed=0)
    assert not any(tmp_path.rglob("*.gz"))
