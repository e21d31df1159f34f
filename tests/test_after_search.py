"""After the search, end to end on digits: `archspec train` a tiny spec for one epoch -> a
bundle -> `archspec evaluate` -> `archspec predict` on PNG files written here."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import archspec
import archspec.cli.export
import archspec.cli.train
from archspec.cli import app

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "search" / "bases" / "tiny_effnet.yaml"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One epoch of tiny_effnet on 400 digits, through the CLI."""
    folder = tmp_path_factory.mktemp("run")
    torch.set_num_threads(1)
    result = invoke("train", TINY, "--data", "digits", "--limit", 400, "--epochs", 1,
                    "--batch-size", 64, "-o", folder, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder, result.output


def digit_pngs(folder: Path, count: int) -> list[tuple[Path, int, np.ndarray]]:
    """The first `count` digits as 8-bit grey PNGs (values 0..16 scaled to 0..255)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    files = []
    for i in range(count):
        pixels = np.round(digits.images[i] * 255 / 16).astype(np.uint8)
        path = folder / f"digit_{i}.png"
        Image.fromarray(pixels).save(path)
        files.append((path, int(digits.target[i]), pixels))
    return files


def test_train_writes_a_bundle_metrics_and_a_checkpoint(trained):
    folder, output = trained
    assert f"bundle: {folder / 'bundle'}" in output
    assert "after 1 epochs" in output
    bundle = archspec.load_bundle(folder / "bundle")
    manifest = bundle.manifest
    assert manifest.class_names == [str(i) for i in range(10)]
    assert manifest.provenance.source == "train"
    assert manifest.provenance.data["dataset"] == "digits"
    assert manifest.provenance.recipe["epochs"] == 1
    assert manifest.preprocessing.size == (12, 12)  # digits are 8x8; tiny_effnet takes 12x12
    rows = list(csv.DictReader((folder / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1]
    assert float(rows[0]["val_accuracy"]) == manifest.metrics["val_accuracy"]
    assert (folder / "checkpoint.pt").exists()


def test_evaluate_reproduces_the_recorded_accuracy(trained):
    folder, _ = trained
    result = invoke("evaluate", folder / "bundle", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    manifest = archspec.load_bundle(folder / "bundle").manifest
    held_out = "test_accuracy" if report["split"] == "test" else "val_accuracy"
    assert report["accuracy"] == manifest.metrics[held_out]
    assert report["images"] == 80 and report["dataset"] == "digits"
    other = invoke("evaluate", folder / "bundle", "--data", "digits", "--limit", 100)
    assert other.exit_code == 0, other.output
    assert re.fullmatch(r"accuracy \d\.\d{4} on 100 images \(digits, all\)\n", other.output)


def test_predict_applies_the_recorded_preprocessing(trained, tmp_path):
    folder, _ = trained
    bundle = archspec.load_bundle(folder / "bundle")
    files = digit_pngs(tmp_path, 5)
    result = invoke("predict", folder / "bundle", *[f for f, _, _ in files], "--json",
                    "--topk", 3)  # fmt: skip
    assert result.exit_code == 0, result.output
    answers = json.loads(result.output)
    assert [a["path"] for a in answers] == [str(f) for f, _, _ in files]
    # the same numbers as the bundle's model on the same pixels, prepared in-process
    pixels = torch.stack([torch.from_numpy(p)[None] for _, _, p in files])
    with torch.no_grad():
        probs = bundle.model(bundle.preprocess(pixels)).softmax(dim=1)
    for answer, row in zip(answers, probs, strict=True):
        got = answer["predictions"]
        assert len(got) == 3
        assert [p["probability"] for p in got] == sorted(
            (p["probability"] for p in got), reverse=True
        )
        best = int(row.argmax())
        assert got[0]["class"] == str(best)
        assert got[0]["probability"] == pytest.approx(float(row[best]), abs=1e-6)
    plain = invoke("predict", folder / "bundle", files[0][0])
    assert plain.exit_code == 0
    path, top = plain.output.strip().split("\t")
    assert path == str(files[0][0])
    name, probability = top.split()
    assert name == answers[0]["predictions"][0]["class"]
    assert float(probability) == pytest.approx(
        answers[0]["predictions"][0]["probability"], abs=1e-4
    )


def test_png_preprocessing_matches_the_training_data(trained, tmp_path):
    """A digit written as PNG and read back gives the model input its training image had."""
    from archspec.train.config import Data
    from archspec.train.data import load_dataset

    folder, _ = trained
    bundle = archspec.load_bundle(folder / "bundle")
    dataset = load_dataset(Data(dataset="digits"), 0)
    (path, _, _), *_ = digit_pngs(tmp_path, 1)
    from_png = bundle.preprocess(bundle.preprocess.load_image(path))
    from_dataset = bundle.preprocess(dataset.images[0])
    # PNGs hold 8 bits: 16 grey levels scaled to 0..255 round to within 0.5/255
    assert torch.allclose(from_png, from_dataset, atol=0.6 / 255 / min(bundle.preprocess.std))


def test_bad_images_get_one_line_each_and_the_rest_still_run(trained, tmp_path):
    folder, _ = trained
    (good, _, _), *_ = digit_pngs(tmp_path, 1)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    deep = tmp_path / "deep.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint16)).save(deep)  # 16-bit grey
    missing = tmp_path / "missing.png"
    result = invoke("predict", folder / "bundle", broken, good, deep, missing)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert f"{broken}: " in result.output
    assert f"{deep}: image mode I;16 is not 8-bit" in result.output
    assert f"{missing}: no such file" in result.output
    assert sum(line.startswith(f"{good}\t") for line in lines) == 1
    assert len(lines) == 4


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["train", TINY], "--data is needed to train a spec", 2),
        (["train", TINY, "--data", "mnist"], "dataset is one of digits", 1),
        (["train", "no_such_model", "--data", "digits"], "unknown model 'no_such_model'", 1),
        (["train", TINY, "--data", "digits", "--lr", "0"], "--lr 0.0: Input should be greater", 1),
        (["predict", "nowhere", "x.png"], "nowhere: not a model bundle (no such folder)", 1),
        (["evaluate", "nowhere"], "nowhere: not a model bundle (no such folder)", 1),
    ],
)
def test_mistakes_get_one_line_and_a_non_zero_exit(args, message, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.exit_code == code
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_the_bundle_exports_to_every_format_and_each_reloads(trained, tmp_path):
    """bundle -> `archspec export` in every format (each verified as it is written) -> each file
    loaded back with its own tools and run on the PNG digits, as `predict` prepares them."""
    from archspec.export import FORMATS
    from tests.export.reload import RUN

    folder, _ = trained
    bundle = archspec.load_bundle(folder / "bundle")
    x = torch.stack(
        [bundle.preprocess(bundle.preprocess.load_image(f)) for f, _, _ in digit_pngs(tmp_path, 5)]
    )
    with torch.inference_mode():
        expected = bundle.model(x)
    for name, fmt in FORMATS.items():
        out = tmp_path / f"model{fmt.suffixes[0]}"
        result = invoke("export", folder / "bundle", "-o", out)
        assert result.exit_code == 0, result.output
        assert "max abs difference from the eager model: batch 1:" in result.output
        got = RUN[name](out, bundle.model.state_dict(), x)
        assert torch.allclose(got, expected, atol=1e-5), (name, (got - expected).abs().max())
        assert got.argmax(1).tolist() == expected.argmax(1).tolist()
