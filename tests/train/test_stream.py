"""Serving a split: streamed from the cache by index, augmented per batch for training only;
two studies share one decoded cache; the recipe's EMA weights are what bundles hold."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from archspec.bundle import load_bundle
from archspec.spec.load import load_spec
from archspec.train.config import Augment, Data, Training
from archspec.train.data import load_dataset
from archspec.train.evaluate import evaluate_bundle
from archspec.train.fit import fit
from archspec.train.shapes import write_image_folder
from archspec.train.stream import ResidentPart, StreamedPart, random_resized_boxes

TINY_EFFNET = Path(__file__).parents[2] / "search" / "bases" / "tiny_effnet.yaml"  # 1 ch, 12x12


@pytest.fixture
def folder(tmp_path):
    return write_image_folder(tmp_path / "shapes", 320, size=24)


@pytest.mark.slow
def test_two_studies_decode_the_folder_once(folder, tmp_path, monkeypatch, capsys):
    from archspec.search import load_search, run_search

    monkeypatch.chdir(tmp_path)
    for study in ("first", "second"):
        definition = {
            "study": study,
            "base": str(TINY_EFFNET),
            "mode": "free",
            "space": {"width": {"low": 0.5, "high": 1.0, "step": 0.5}},
            "data": {"dataset": f"imagefolder:{folder}", "image_size": 16},
            "training": {"epochs": 1, "batch_size": 32, "precise_bn": 64, "threads": 1},
            "latency": {"warmup": 1, "repeats": 1},
            "evaluation": {"seeds": 0},
            "sampler": "random",
            "trials": 1,
        }
        path = tmp_path / f"{study}.yaml"
        path.write_text(yaml.safe_dump(definition))
        run_search(load_search(path), quiet=True)
    err = capsys.readouterr().err
    assert err.count("320 images decoded") == 1, err


def streamed(folder, **augment):
    data = load_dataset(Data(dataset=f"imagefolder:{folder}", image_size=24), seed=0)
    recipe = Training(augment=Augment(**augment) if augment else None)
    return data, data.split((16, 16), 3, "cpu", recipe)


def test_validation_and_test_are_never_augmented(folder):
    data, split = streamed(folder, policy="trivialaugment", mixup=0.2, erasing=0.5)
    assert isinstance(split.val, StreamedPart) and split.val.augment is None
    assert split.train.augment is not None
    # validation and test: the preprocessing record applied to the decoded images, every time
    for part, index in ((split.val, data.val_idx), (split.test, data.test_idx)):
        (x, y), (again, _) = next(part.chunks(1024)), next(part.chunks(1024))
        raw = torch.from_numpy(data.images.gather(index.numpy()))
        assert torch.equal(x, again) and torch.allclose(x, split.preprocessing(raw), atol=1e-6)
        assert torch.equal(y, data.labels[index])
    # training batches are augmented: different from the plain images, and on every draw
    idx = [torch.arange(32)]
    torch.manual_seed(0)
    a, ya = next(split.train.batches(idx))
    b, _ = next(split.train.batches(idx))
    plain, _ = next(split.train.chunks(32))
    assert a.shape == plain.shape == (32, 3, 16, 16)
    assert not torch.allclose(a, plain) and not torch.allclose(a, b)
    assert ya.shape == (32, 32) and torch.allclose(ya.sum(1), torch.ones(32))  # MixUp: soft
    torch.manual_seed(0)
    assert torch.equal(next(split.train.batches(idx))[0], a)  # seeded: reproducible


def test_default_augmentation_by_dataset(folder):
    data, split = streamed(folder)
    assert data.default_augment() == Augment(crop="random_resized", flip=True)
    assert split.train.augment.augment == Augment()
    digits = load_dataset(Data(dataset="digits", limit=200), seed=0)
    assert digits.default_augment() is None
    assert isinstance(digits.split((8, 8), 1, "cpu", Training()).train, ResidentPart)
    asked = digits.split((8, 8), 1, "cpu", Training(augment=Augment(crop="none")))
    assert isinstance(asked.train, StreamedPart)  # flip asked: per batch, from memory
    plain = digits.split((8, 8), 1, "cpu", Training(augment=Augment(crop="none", flip=False)))
    assert isinstance(plain.train, ResidentPart)  # nothing asked: today's fast path


def test_random_resized_boxes_stay_inside_the_image():
    torch.manual_seed(0)
    boxes = random_resized_boxes(2000, 20, 30, torch.device("cpu"))
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 30 + 1e-4).all()
    assert (boxes[:, 3] <= 20 + 1e-4).all()
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / 600
    assert 0.08 - 1e-4 <= float(area.min()) and float(area.max()) <= 1 + 1e-4


def test_ema_weights_are_validated_tested_and_bundled(tmp_path):
    recipe = Training(epochs=2, batch_size=32, ema=0.99, precise_bn=64, threads=1)
    data = Data(dataset="digits", limit=300)
    result = fit(load_spec(TINY_EFFNET), data, recipe, tmp_path / "run", seed=0)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    averaged = {k.removeprefix("module."): v for k, v in state["ema"].items() if k != "n_averaged"}
    bundle = load_bundle(result.bundle)
    weights = bundle.model.state_dict()
    name = next(k for k in weights if k.endswith("weight") and weights[k].ndim == 4)
    assert torch.equal(weights[name], averaged[name])
    assert not torch.equal(weights[name], state["model"][name])  # not the last step's weights
    assert int(state["ema"]["n_averaged"]) == 2 * (180 // 32)
    # the bundle's test accuracy is the EMA model's, and evaluate reads it back
    assert evaluate_bundle(bundle).accuracy == result.metrics["test_accuracy"]


def test_a_bundle_trained_on_a_folder_records_the_dataset_and_evaluates_the_same(folder, tmp_path):
    recipe = Training(epochs=1, batch_size=32, precise_bn=64, threads=1, test_size_ratio=1.25)
    data = Data(dataset=f"imagefolder:{folder}", image_size=24)
    result = fit(load_spec(TINY_EFFNET), data, recipe, tmp_path / "run", seed=0)
    bundle = load_bundle(result.bundle)
    recorded = bundle.manifest.provenance.data
    assert recorded["samples"] == 320 and recorded["classes"] == 32
    assert "num_samples" not in recorded and "num_classes" not in recorded
    assert bundle.class_names == [f"c{i:02d}" for i in range(32)]
    # the recorded folder is read only when the user names it: then its held-out test split
    named = evaluate_bundle(bundle, Data(dataset=f"imagefolder:{folder}"))
    assert (named.accuracy, named.split) == (result.metrics["test_accuracy"], "test")
    assert np.isfinite(result.train.epochs[0].train_loss)
