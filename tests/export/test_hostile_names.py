"""Names from outside (class folders, study names) go through every export as data: the py
file compiles and carries them as literals, metadata formats store them as given."""

import json

import pytest
import torch

import archspec
from archspec.bundle import save_bundle
from archspec.export import FORMATS, export
from archspec.preprocess import Preprocessing
from archspec.sources import load_source
from tests.export.conftest import TINY

HOSTILE = ['"""', "C:\\Users\\x", "\x1b]0;pwned\x07", "'; import os #", "é", "{cls}", "\\N", "a\nb"]
HOSTILE += [f"c{i}" for i in range(10 - len(HOSTILE))]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    spec = archspec.load_spec(TINY)
    torch.manual_seed(0)
    model = archspec.build(spec)
    pre = Preprocessing(channels=1, size=(12, 12), mean=[0.5], std=[0.25])
    folder = tmp_path_factory.mktemp("hostile") / 'b"""\\x'
    return save_bundle(folder, spec, model.state_dict(), preprocessing=pre, class_names=HOSTILE)


def test_a_py_export_keeps_hostile_names_as_literals(bundle, tmp_path):
    path = tmp_path / "model.py"
    export(load_source(bundle), path)  # verified: the file ran and matched the model
    text = path.read_text()
    namespace = {}
    exec(compile(text, str(path), "exec"), namespace)
    assert namespace["CLASS_NAMES"] == HOSTILE
    assert str(bundle) in namespace["ABOUT"]
    assert "\x1b" not in text  # escaped in the literal, not raw in the file


@pytest.mark.parametrize("fmt", sorted(set(FORMATS) - {"py"}))
def test_every_other_format_exports_a_bundle_with_hostile_names(bundle, tmp_path, fmt):
    path = tmp_path / f"model{FORMATS[fmt].suffixes[0]}"
    result = export(load_source(bundle), path, fmt)
    assert path.exists() and (result.checks or fmt in ("yaml", "safetensors"))
    if fmt == "onnx":
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert json.loads(meta["archspec.class_names"]) == HOSTILE
