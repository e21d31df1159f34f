"""Datasets of a search: fixed stratified split, resizing, channels, the built-in sources."""

import numpy as np
import pytest
import torch

from archspec.errors import SearchError
from archspec.train.config import Data
from archspec.train.data import load_dataset


def test_digits_split_is_fixed_and_stratified():
    a = load_dataset(Data(dataset="digits"), seed=0)
    b = load_dataset(Data(dataset="digits"), seed=0)
    assert len(a) == 1797 and a.num_classes == 10 and a.native_size == (8, 8)
    assert torch.equal(a.train_idx, b.train_idx) and torch.equal(a.val_idx, b.val_idx)
    parts = [set(p.tolist()) for p in (a.train_idx, a.val_idx, a.test_idx)]
    assert [len(p) for p in parts] == [1077, 360, 360] and len(set.union(*parts)) == 1797
    assert torch.equal(a.test_idx, b.test_idx)  # the held-out test split is fixed too
    for part in (a.val_idx, a.test_idx):
        share = np.bincount(a.labels[part].numpy()) / np.bincount(a.labels.numpy())
        assert np.allclose(share, 0.2, atol=0.02)
    c = load_dataset(Data(dataset="digits"), seed=1)
    assert not torch.equal(a.val_idx, c.val_idx)


def test_split_is_resized_normalized_and_channel_matched():
    data = load_dataset(Data(dataset="digits", limit=200), seed=0)
    split = data.split((12, 12), 3, "cpu")
    assert split.train_x.shape == (120, 3, 12, 12) and split.val_x.shape == (40, 3, 12, 12)
    assert split.test_x.shape == (40, 3, 12, 12)
    assert split.train_x.dtype == torch.float32 and split.train_y.dtype == torch.int64
    mean = split.train_x.mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=1e-4)
    assert data.split((12, 12), 3, "cpu") is split  # cached
    gray = data.split((16, 16), 1, "cpu")
    assert gray.train_x.shape[1:] == (1, 16, 16)


def test_synthetic_is_deterministic_and_learnable_shape():
    a = load_dataset(Data(dataset="synthetic", num_samples=100, num_classes=4), seed=3)
    b = load_dataset(Data(dataset="synthetic", num_samples=100, num_classes=4), seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.images.shape == (100, 3, 32, 32) and a.num_classes == 4


def test_imagefolder(tmp_path, monkeypatch):
    from PIL import Image

    for cls, color in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
        (tmp_path / "pets" / cls).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (20 + i, 18), color).save(tmp_path / "pets" / cls / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    data = load_dataset(Data(dataset="imagefolder:pets", image_size=16), seed=0)
    assert data.images.shape == (10, 3, 16, 16) and data.images.gather([0]).dtype == np.uint8
    assert data.num_classes == 2 and data.labels.tolist() == [0] * 5 + [1] * 5
    assert data.split((8, 8), 1, "cpu").train_x.shape == (6, 1, 8, 8)
    with pytest.raises(SearchError, match="not a folder"):
        load_dataset(Data(dataset="imagefolder:nowhere"), seed=0)
    deep = tmp_path / "pets" / "dog" / "deep.png"
    Image.new("I;16", (20, 18), 40000).save(deep)  # convert("RGB") would clip it to white
    with pytest.raises(SearchError, match=r"deep\.png: image mode I;16 is not 8-bit"):
        load_dataset(Data(dataset="imagefolder:pets", image_size=16), seed=0)


def test_torchvision_datasets_never_download_unless_asked(tmp_path):
    pytest.importorskip("torchvision")
    with pytest.raises(SearchError, match=r"set data\.download: true"):
        load_dataset(Data(dataset="torchvision:MNIST", root=str(tmp_path)), seed=0)
    assert not any(tmp_path.rglob("*.gz"))
