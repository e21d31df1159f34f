"""Model bundles: round trip, refused tampering (hash, parameter count), atomic writes."""

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch

import archspec
from archspec.bundle import (
    MANIFEST_FILE,
    SPEC_FILE,
    WEIGHTS_FILE,
    Preprocessing,
    load_bundle,
    read_manifest,
    save_bundle,
)
from archspec.errors import BundleError
from archspec.scaling.rewrite import scale
from archspec.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "search" / "bases" / "tiny_effnet.yaml"


@pytest.fixture(scope="module")
def spec():
    return load_spec(BASE)


@pytest.fixture
def saved(tmp_path, spec):
    torch.manual_seed(1)
    model = archspec.build(spec)
    pre = Preprocessing(channels=1, size=(12, 12), mean=[0.3], std=[0.2])
    path = save_bundle(
        tmp_path / "b",
        spec,
        model.state_dict(),
        preprocessing=pre,
        metrics={"val_accuracy": 0.5},
    )
    return path, model.eval()


def test_round_trip_gives_the_same_model_in_eval_mode(saved, spec):
    path, model = saved
    bundle = archspec.load_bundle(path)
    assert not bundle.model.training
    x = torch.randn(3, 1, 12, 12)
    assert torch.equal(bundle.model(x), model(x))
    manifest = bundle.manifest
    assert manifest.params == archspec.analyze(spec).params == 41_778
    assert manifest.flops == archspec.analyze(spec).flops
    assert manifest.weights_sha256 == hashlib.sha256((path / WEIGHTS_FILE).read_bytes()).hexdigest()
    assert (manifest.input_channels, manifest.input_size) == (1, (12, 12))
    assert manifest.class_names == [str(i) for i in range(10)]
    assert manifest.metrics == {"val_accuracy": 0.5}
    assert manifest.torch_version == torch.__version__
    assert bundle.preprocess.mean == [0.3]
    assert sorted(p.name for p in path.iterdir()) == [MANIFEST_FILE, SPEC_FILE, WEIGHTS_FILE]


def test_preprocessing_normalizes_resizes_and_converts_channels():
    pre = Preprocessing(channels=1, size=(4, 4), mean=[0.5], std=[0.25])
    rgb = torch.zeros(2, 3, 8, 8)
    rgb[:, 0] = 1.0  # pure red: luma 0.299
    x = pre(rgb)
    assert x.shape == (2, 1, 4, 4)
    assert torch.allclose(x, torch.full_like(x, (0.299 - 0.5) / 0.25))
    assert pre(torch.full((1, 4, 4), 255, dtype=torch.uint8)).shape == (1, 4, 4)


def test_changed_weights_are_refused(saved):
    path, _ = saved
    data = bytearray((path / WEIGHTS_FILE).read_bytes())
    data[-1] ^= 0xFF
    (path / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(
        BundleError, match=r"weights\.safetensors: sha256 .* does not match the manifest"
    ):
        load_bundle(path)


def test_a_manifest_with_another_parameter_count_is_refused(saved):
    path, _ = saved
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest["params"] += 1
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))
    rehash(path)
    with pytest.raises(
        BundleError,
        match=r"spec\.yaml: builds a model with 41,778 parameters; the manifest records 41,779",
    ):
        load_bundle(path)


def test_a_spec_that_no_longer_fits_the_weights_is_refused(saved, spec):
    from archspec.spec.dump import dump_spec

    path, _ = saved
    (path / SPEC_FILE).write_text(dump_spec(scale(spec, width=1.5)))
    rehash(path)
    with pytest.raises(BundleError, match="parameters; the manifest records 41,778"):
        load_bundle(path)


def test_class_names_that_do_not_fit_the_outputs_are_refused(saved):
    path, _ = saved
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    (path / MANIFEST_FILE).write_text(json.dumps({**manifest, "class_names": ["a", "b"]}))
    rehash(path)
    with pytest.raises(BundleError, match=r"archspec\.json: 2 class names for the model's 10"):
        load_bundle(path)


def test_weights_with_nan_are_refused_even_with_a_matching_hash(saved, spec):
    import safetensors.torch

    path, model = saved
    state = {k: v.clone() for k, v in model.state_dict().items()}
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] = float("nan")
    data = safetensors.torch.save(state, metadata={"format": "pt"})
    (path / WEIGHTS_FILE).write_bytes(data)
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest["weights_sha256"] = hashlib.sha256(data).hexdigest()
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))
    rehash(path)
    with pytest.raises(BundleError, match=f"{re.escape(name)} holds NaN or infinite values"):
        load_bundle(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 3}, "bundle version 3; this archspec reads versions 1, 2; upgrade archspec"),
        ({"format": "other"}, "not an archspec bundle manifest"),
        ({"weights_sha256": "xyz"}, "weights_sha256: String should match pattern"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_bad_manifests_get_one_clear_line(saved, change, message):
    path, _ = saved
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    (path / MANIFEST_FILE).write_text(json.dumps({**manifest, **change}))
    with pytest.raises(BundleError, match=re.escape(message)) as info:
        read_manifest(path)
    assert str(info.value).startswith(str(path / MANIFEST_FILE))
    assert "\n" not in str(info.value)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match=r"not a model bundle \(no such folder\)"):
        load_bundle(tmp_path / "nothing")
    with pytest.raises(BundleError, match=r"not a model bundle \(no archspec\.json\)"):
        load_bundle(tmp_path)


def test_writes_are_atomic_and_never_replace_by_accident(saved, spec, tmp_path):
    path, model = saved
    before = (path / WEIGHTS_FILE).read_bytes()
    pre = Preprocessing(channels=1, size=(12, 12), mean=[0.3], std=[0.2])
    with pytest.raises(BundleError, match="a bundle is already there"):
        save_bundle(path, spec, model.state_dict(), preprocessing=pre)
    # weights that do not fit: refused before anything is written
    bad = {k: v for k, v in model.state_dict().items() if not k.startswith("stem")}
    with pytest.raises(BundleError, match=r"do not fit the spec: missing: stem\.weight"):
        save_bundle(tmp_path / "new", spec, bad, preprocessing=pre)
    # a folder that is not a bundle is never replaced
    (tmp_path / "mine").mkdir()
    with pytest.raises(BundleError, match="exists and is not a bundle"):
        save_bundle(tmp_path / "mine", spec, model.state_dict(), preprocessing=pre, overwrite=True)
    # overwrite replaces a bundle whole
    torch.manual_seed(2)
    other = archspec.build(spec).state_dict()
    save_bundle(path, spec, other, preprocessing=pre, overwrite=True)
    assert (path / WEIGHTS_FILE).read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "mine"]  # no temporary left


def test_an_interrupted_write_leaves_nothing(saved, spec, tmp_path, monkeypatch):
    import archspec.bundle as bundle_module

    _, model = saved
    pre = Preprocessing(channels=1, size=(12, 12), mean=[0.3], std=[0.2])

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_module.os, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_bundle(tmp_path / "new", spec, model.state_dict(), preprocessing=pre)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_nothing_in_archspec_unpickles():
    """torch.load appears only with weights_only=True (checkpoints); bundles use safetensors."""
    calls = []
    for folder in ("archspec", "tests", "benchmarks"):
        for file in (ROOT / folder).rglob("*.py"):
            for line in file.read_text().splitlines():
                if re.search(r"(?<![\w.])torch\.load\(|\bpickle\.loads?\(", line):
                    calls.append((file.name, line.strip()))
    assert calls, "the training checkpoint loads with torch.load"
    # a test's round trip of its own object (pickle.loads(pickle.dumps(x))) reads no file
    unsafe = [
        c for c in calls if "weights_only=True" not in c[1] and "loads(pickle.dumps(" not in c[1]
    ]
    assert not unsafe, unsafe


def rehash(path):
    """Record the current spec's sha256 and the manifest's own, as a consistent (hostile or
    hand-edited) bundle would: the checks after the hashes must catch what is wrong."""
    from archspec.bundle import manifest_digest

    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest["spec_sha256"] = hashlib.sha256((path / SPEC_FILE).read_bytes()).hexdigest()
    manifest["sha256"] = manifest_digest(manifest)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))
