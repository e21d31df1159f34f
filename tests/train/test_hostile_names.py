"""Class folder names from outside go through training, the bundle, predict and the py export
as data: quotes, backslashes and escape sequences round-trip; a name that is not UTF-8 is
refused before any training, with the path shown escaped."""

import os
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import archspec
import archspec.cli.train  # registers train and predict
from archspec.cli import app
from archspec.errors import SearchError
from archspec.export import export
from archspec.sources import load_source
from archspec.train.config import Data, Training
from archspec.train.fit import fit

BASE = Path(__file__).resolve().parents[2] / "search" / "bases" / "tiny_effnet.yaml"
HOSTILE = ['say """hi"""', "C:\\Users\\x", "\x1b]0;pwned\x07", "it's {cls}"]


def _folder(root: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True)
        for j in range(10):
            Image.new("L", (12, 12), 20 * i + j).save(folder / f"{j}.png")
    return root


def test_hostile_class_names_round_trip_through_train_predict_and_export(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = _folder(tmp_path / "photos", HOSTILE)
    spec = archspec.load_spec(BASE, ["options.num_classes.default=4"])
    data = Data(dataset=f"imagefolder:{root}", image_size=12, val_fraction=0.2, test_fraction=0.2)
    result = fit(spec, data, Training(epochs=1, batch_size=8, threads=1), tmp_path / "run")
    bundle = archspec.load_bundle(result.bundle)
    assert bundle.class_names == sorted(HOSTILE)
    image = root / HOSTILE[0] / "0.png"
    shown = CliRunner().invoke(app, ["predict", str(result.bundle), str(image), "--topk", "4"])
    assert shown.exit_code == 0 and "\x1b" not in shown.output and "\\x1b]0;pwned" in shown.output
    path = tmp_path / "model.py"
    export(load_source(result.bundle), path)
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    assert namespace["CLASS_NAMES"] == sorted(HOSTILE)


def test_a_class_folder_name_that_is_not_utf8_is_refused_before_training(tmp_path):
    root = _folder(tmp_path / "photos", ["good", os.fsdecode(b"caf\xe9")])
    spec = archspec.load_spec(BASE, ["options.num_classes.default=2"])
    data = Data(dataset=f"imagefolder:{root}", image_size=12)
    with pytest.raises(SearchError, match=r"class folder .*caf\\xe9: its name is not UTF-8 text"):
        fit(spec, data, Training(epochs=1, batch_size=8, threads=1), tmp_path / "run")
    assert not (tmp_path / "run").exists()
