"""The decoded-image cache: built once, reused by later studies, rebuilt when damaged; image
folders' rules (hidden files, too-small classes, train/val/test layouts)."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from archspec.errors import SearchError
from archspec.train.cache import ShardedImages
from archspec.train.config import Data
from archspec.train.data import load_dataset
from archspec.train.shapes import write_image_folder


def cache_folders() -> list[Path]:
    root = Path(os.environ["ARCHSPEC_CACHE"])
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def test_folder_is_decoded_once_into_shards_and_read_by_index(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("archspec.train.cache.SHARD_IMAGES", 32)
    write_image_folder(tmp_path / "pets", 160, size=20)
    cfg = Data(dataset=f"imagefolder:{tmp_path / 'pets'}", image_size=12)
    first = load_dataset(cfg, seed=0)
    assert "160 images decoded" in capsys.readouterr().err
    assert isinstance(first.images, ShardedImages) and first.images.shape == (160, 3, 12, 12)
    assert len(first.images.shards) == 5  # 160 images, 32 a shard, decoded by 2 workers
    second = load_dataset(cfg, seed=0)
    assert "decoded" not in capsys.readouterr().err  # reused
    assert [p.name for p in cache_folders()] == [first.images.folder.name]
    rows = np.array([159, 0, 33, 17])
    path = sorted((tmp_path / "pets").rglob("*.jpg"))[33]
    expect = np.asarray(Image.open(path).convert("RGB").resize((12, 12), Image.BILINEAR))
    assert np.array_equal(second.images.gather(rows)[2], expect.transpose(2, 0, 1))
    # a worker process gets the shards' names, not the images, and maps them again
    copy = pickle.loads(pickle.dumps(second))
    assert len(pickle.dumps(second.images)) < 1000
    assert np.array_equal(copy.images.gather(rows), second.images.gather(rows))
    # another load size, or a changed file, is another cache
    load_dataset(cfg.model_copy(update={"image_size": 10}), seed=0)
    os.utime(path, ns=(1, 1))
    load_dataset(cfg, seed=0)
    assert len(cache_folders()) == 3


@pytest.mark.parametrize("damage", ["truncate", "flip", "index", "missing"])
def test_a_damaged_or_partial_cache_is_rebuilt(tmp_path, capsys, damage):
    write_image_folder(tmp_path / "pets", 160, size=16)
    cfg = Data(dataset=f"imagefolder:{tmp_path / 'pets'}", image_size=16)
    good = load_dataset(cfg, seed=0).images.gather(np.arange(160))
    (folder,) = cache_folders()
    shard = folder / "shard-00000.npy"
    if damage == "truncate":
        with shard.open("r+b") as handle:
            handle.truncate(shard.stat().st_size - 100)
    elif damage == "flip":
        data = bytearray(shard.read_bytes())
        data[-1] ^= 0xFF
        shard.write_bytes(bytes(data))
    elif damage == "index":
        (folder / "index.json").write_text("{")
    else:
        shard.unlink()
    capsys.readouterr()
    again = load_dataset(cfg, seed=0)
    err = capsys.readouterr().err
    assert "is damaged" in err and "rebuilding" in err and "160 images decoded" in err
    assert np.array_equal(again.images.gather(np.arange(160)), good)


def test_a_half_written_cache_is_never_used(tmp_path, monkeypatch):
    """Writing goes to a temporary folder renamed into place: an interrupted build leaves
    nothing under the key, and the next load builds it whole."""
    write_image_folder(tmp_path / "pets", 160, size=16)
    cfg = Data(dataset=f"imagefolder:{tmp_path / 'pets'}", image_size=16)

    import archspec.train.cache

    real = archspec.train.cache._write_shard

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("archspec.train.cache._write_shard", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_dataset(cfg, seed=0)
    assert list(Path(os.environ["ARCHSPEC_CACHE"]).iterdir()) == []
    monkeypatch.setattr("archspec.train.cache._write_shard", real)
    assert len(load_dataset(cfg, seed=0)) == 160


def test_hidden_files_and_folders_are_skipped(tmp_path):
    write_image_folder(tmp_path / "pets", 160, size=16)
    hidden = tmp_path / "pets" / ".ipynb_checkpoints"
    hidden.mkdir()
    Image.new("RGB", (16, 16)).save(hidden / "x.png")
    Image.new("RGB", (16, 16)).save(tmp_path / "pets" / "c00" / ".thumb.png")
    (tmp_path / "pets" / "c01" / ".cache").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "pets" / "c01" / ".cache" / "y.png")
    data = load_dataset(Data(dataset=f"imagefolder:{tmp_path / 'pets'}", image_size=16), seed=0)
    assert len(data) == 160 and data.num_classes == 32 and data.class_names[:2] == ["c00", "c01"]


def test_a_class_too_small_for_the_split_is_named(tmp_path):
    write_image_folder(tmp_path / "pets", 320, size=16)
    (tmp_path / "pets" / "lonely").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "pets" / "lonely" / "only.png")
    with pytest.raises(SearchError, match=r"pets: class 'lonely' has 1 image; the split needs at "
                       r"least 5 per class"):  # fmt: skip
        load_dataset(Data(dataset=f"imagefolder:{tmp_path / 'pets'}", image_size=16), seed=0)


def test_train_val_test_folders_are_the_splits(tmp_path):
    root = write_image_folder(
        tmp_path / "net", 200, size=16, splits={"train": 6, "val": 2, "test": 2}
    )
    data = load_dataset(Data(dataset=f"imagefolder:{root}", image_size=16), seed=0)
    assert (len(data.train_idx), len(data.val_idx), len(data.test_idx)) == (120, 40, 40)
    assert data.class_names == [f"c{i:02d}" for i in range(32)]
    files = sorted((root / "val").rglob("*.jpg"), key=lambda p: (p.parent.name, p.name))
    val_rows = data.images.gather(data.val_idx.numpy())
    expect = np.asarray(Image.open(files[0]).convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(val_rows[0], expect)
    # without test/, the test part is carved from train/ (stratified); val/ stays val
    root2 = write_image_folder(tmp_path / "net2", 400, size=16, splits={"train": 3, "val": 1})
    data = load_dataset(Data(dataset=f"imagefolder:{root2}", image_size=16), seed=0)
    assert (len(data.train_idx), len(data.val_idx), len(data.test_idx)) == (240, 100, 60)
    assert torch.equal(data.val_idx, torch.arange(300, 400))


def test_the_load_size_follows_the_largest_input_asked_for(tmp_path, capsys):
    """Unless data.image_size is set, an image folder is cached at the largest input the search
    (base input x largest resolution multiplier^phi, one size step up, x test_size_ratio) or the
    training (the spec's input x test_size_ratio) reads; the bundle records it, so evaluation
    reads the same cache without decoding again."""
    from archspec.bundle import load_bundle
    from archspec.search.definition import load_search
    from archspec.spec import load_spec
    from archspec.train.config import Training
    from archspec.train.evaluate import evaluate_bundle
    from archspec.train.fit import fit

    write_image_folder(tmp_path / "pets", 320, size=40)
    folder = f"data.dataset=imagefolder:{tmp_path / 'pets'}"
    # shapes_compound: base 16 px, gamma up to 1.4, phi 2: 16 x 1.96 -> 32 (multiple 2), +2
    assert load_search("search/shapes_compound.yaml", [folder]).data.image_size == 34
    ratio = load_search("search/shapes_compound.yaml", [folder, "training.test_size_ratio=1.5"])
    assert ratio.data.image_size == 51
    assert load_search("search/shapes_compound.yaml", [folder, "data.image_size=20"]).data \
        .image_size == 20  # fmt: skip
    assert load_search("search/shapes_compound.yaml").data.image_size == 64  # demo set: unused

    spec = load_spec(Path(__file__).resolve().parents[2] / "search" / "bases" / "tiny_effnet.yaml")
    data = Data(dataset=f"imagefolder:{tmp_path / 'pets'}")
    recipe = Training(epochs=1, batch_size=16, test_size_ratio=1.25, augment={"crop": "none"})
    result = fit(spec, data, recipe, tmp_path / "run", seed=0)
    assert "320 images decoded" in capsys.readouterr().err
    (cache,) = cache_folders()
    assert np.load(cache / "shard-00000.npy", mmap_mode="r").shape[-2:] == (15, 15)  # 12 x 1.25
    bundle = load_bundle(result.bundle)
    assert bundle.manifest.provenance.data["image_size"] == 15
    evaluate_bundle(bundle, data)  # the user's copy: read as the bundle's training read it
    assert "decoded" not in capsys.readouterr().err and len(cache_folders()) == 1
