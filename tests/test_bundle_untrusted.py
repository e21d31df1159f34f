"""A bundle from someone else is data, never instructions: every edit, link, special file and
out-of-bounds field is one BundleError line, and nothing in the bundle is echoed, downloaded
or followed."""

import hashlib
import json
import os
import re
import threading

import pytest
import torch

import archspec
from archspec.bundle import MANIFEST_FILE, SPEC_FILE, WEIGHTS_FILE, load_bundle, save_bundle
from archspec.errors import ArchspecError, BundleError
from archspec.hostile import SPEC  # a small valid spec: 1x8x8 -> 3 classes
from archspec.preprocess import Preprocessing

SECRET = "root:$6$saltsalt$0123456789abcdef:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"


@pytest.fixture
def bundle(tmp_path):
    spec = archspec.load_spec(SPEC)
    torch.manual_seed(0)
    model = archspec.build(spec)
    pre = Preprocessing(channels=1, size=(8, 8), mean=[0.5], std=[0.25])
    return save_bundle(
        tmp_path / "b", spec, model.state_dict(), preprocessing=pre, class_names=["a", "b", "c"]
    )


def rewrite(path, **changes):
    """Change manifest fields and re-record every hash, as a careful forger would: the checks
    after the hashes must still catch what is wrong."""
    from archspec.bundle import manifest_digest

    manifest = json.loads((path / MANIFEST_FILE).read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = manifest
        for parent in parents:
            node = node[parent]
        node[key] = value
    manifest["weights_sha256"] = hashlib.sha256((path / WEIGHTS_FILE).read_bytes()).hexdigest()
    manifest["spec_sha256"] = hashlib.sha256((path / SPEC_FILE).read_bytes()).hexdigest()
    manifest["sha256"] = manifest_digest(manifest)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))


def refused(path, pattern):
    with pytest.raises(BundleError) as info:
        load_bundle(path)
    message = str(info.value)
    assert re.search(pattern, message), message
    assert "\n" not in message.strip()
    return message


def test_a_saved_bundle_loads(bundle):
    assert load_bundle(bundle).class_names == ["a", "b", "c"]


def test_an_edited_manifest_is_reported_as_tampering(bundle):
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    manifest["class_names"] = ["cat", "dog", "eel"]
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest))
    refused(bundle, r"archspec\.json: the manifest was changed after it was written")


def test_an_edited_spec_is_reported_as_tampering(bundle):
    text = (bundle / SPEC_FILE).read_text().replace("out_channels: 4", "out_channels: 5")
    (bundle / SPEC_FILE).write_text(text)
    refused(bundle, r"spec\.yaml: sha256 .* the spec was changed or damaged")


def test_a_symlinked_spec_is_refused_and_never_quoted(bundle, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text(SECRET)
    (bundle / SPEC_FILE).unlink()
    os.symlink(secret, bundle / SPEC_FILE)
    message = refused(bundle, r"spec\.yaml: is a symbolic link")
    assert "saltsalt" not in message and "daemon" not in message and "99999" not in message


def test_a_file_that_is_no_spec_is_not_echoed(bundle):
    (bundle / SPEC_FILE).write_text(SECRET)
    rewrite(bundle)  # even with matching hashes
    message = refused(bundle, r"spec\.yaml: not a valid archspec spec")
    assert "saltsalt" not in message and "daemon" not in message and "99999" not in message


def test_a_fifo_in_place_of_the_weights_is_refused_without_waiting(bundle):
    (bundle / WEIGHTS_FILE).unlink()
    os.mkfifo(bundle / WEIGHTS_FILE)
    result = []
    worker = threading.Thread(target=lambda: result.append(_error(bundle)), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "load_bundle hung on a FIFO"
    assert "weights.safetensors: not a regular file" in result[0]


def _error(path):
    try:
        load_bundle(path)
    except ArchspecError as exc:
        return str(exc)
    return "loaded"


def test_a_deeply_nested_manifest_is_one_line(bundle):
    (bundle / MANIFEST_FILE).write_text("[" * 100_000 + "]" * 100_000)
    refused(bundle, r"archspec\.json: (not a manifest \(nested too deeply\)|not an archspec)")


def test_an_oversized_manifest_is_not_read(bundle):
    with open(bundle / MANIFEST_FILE, "wb") as handle:
        handle.truncate(2 << 20)
    refused(bundle, r"archspec\.json: 2,097,152 bytes, over the 1,048,576 allowed")


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"preprocessing__channels": 3, "preprocessing__mean": [0, 0, 0],
          "preprocessing__std": [1, 1, 1]}, r"preprocessing gives 3x\[8, 8\] inputs; the spec takes 1x\[8, 8\]"),
        ({"preprocessing__size": [65536, 65536]}, r"preprocessing gives 1x\[65536, 65536\]"),
        ({"preprocessing__size": [9, 9]}, r"preprocessing gives 1x\[9, 9\] inputs"),
        ({"preprocessing__load_size": [65536, 65536]}, r"load_size \[65536, 65536\] is over 64"),
        ({"provenance__seed": 10**30}, r"provenance\.seed: Input should be less than or equal to 4294967295"),
        ({"class_names": ["x"] * 2}, r"2 class names for the model's 3 outputs"),
        ({"input_size": [8, 9]}, r"the input is 1x\[8, 8\]; the manifest records 1x\[8, 9\]"),
    ],
)  # fmt: skip
def test_recorded_fields_are_checked_against_the_spec_with_bounds(bundle, changes, pattern):
    rewrite(bundle, **changes)
    refused(bundle, pattern)


def test_a_nan_mean_is_refused(bundle):
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    text = json.dumps(manifest).replace('"mean": [0.5]', '"mean": [NaN]')
    (bundle / MANIFEST_FILE).write_text(text)
    rewrite(bundle)
    refused(bundle, r"preprocessing\.mean\.0: Input should be a finite number")


def test_weights_in_a_dtype_the_checks_do_not_support_are_refused(bundle):
    import safetensors.torch

    state = safetensors.torch.load_file(bundle / WEIGHTS_FILE)
    name = next(iter(state))
    state[name] = state[name].to(torch.float8_e4m3fn)
    (bundle / WEIGHTS_FILE).write_bytes(safetensors.torch.save(state))
    rewrite(bundle)
    refused(bundle, rf"{re.escape(name)} is float8_e4m3fn; bundles hold")


def test_a_recorded_download_is_never_followed(bundle, tmp_path, monkeypatch):
    from archspec.train.evaluate import evaluate_bundle

    monkeypatch.chdir(tmp_path)
    root = tmp_path / "elsewhere"
    rewrite(
        bundle,
        provenance__data={"dataset": "torchvision:MNIST", "download": True, "root": str(root)},
    )
    with pytest.raises(ArchspecError, match=r"a bundle never chooses files to read or a download"):
        evaluate_bundle(load_bundle(bundle))
    assert not root.exists() and not (tmp_path / "data").exists()


def test_an_invalid_recorded_dataset_is_one_line(bundle):
    from archspec.train.evaluate import evaluate_bundle

    rewrite(bundle, provenance__data={"dataset": "digits", "val_fraction": "lots"})
    with pytest.raises(ArchspecError, match=r"provenance\.data\.val_fraction: Input should be"):
        evaluate_bundle(load_bundle(bundle))


def test_class_names_reach_the_terminal_escaped(bundle, tmp_path):
    from typer.testing import CliRunner

    import archspec.cli.train  # noqa: F401 - registers predict
    from archspec.cli import app

    rewrite(bundle, class_names=["\x1b]0;pwned\x07", "\x1b[2J", "ok"])
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("L", (8, 8), 128).save(image)
    result = CliRunner().invoke(app, ["predict", str(bundle), str(image), "--topk", "3"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "\\x1b]0;pwned\\x07" in result.output and "\\x1b[2J" in result.output
