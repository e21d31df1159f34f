"""Files from outside, mutated to break archspec, and what archspec promises for each: a bundle,
an image file or a study journal that has been tampered with, truncated, swapped for a special
file or filled with hostile values is either used or refused with an ArchspecError, within a
time bound; never an internal error, never a hang. Used by the hypothesis tests
(tests/test_hostile_files.py) and benchmarks/fuzz_files.py; the spec-language counterpart is
archspec/testing.py."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

from archspec.spec.compose import walk
from archspec.testing import Outcome, outcome_of

TIME_LIMIT_S = 20.0
KINDS = ("bundle", "image", "journal")
SPEC = """name: fuzz
input: {channels: 1, size: 8}
layers:
  - {op: conv2d, out_channels: 4, kernel_size: 3, padding: 1}
  - {op: relu}
  - {op: adaptive_avgpool, output_size: 1}
  - {op: flatten}
  - {op: linear, out_features: 3}
"""
# values a hostile manifest might hold in any place
HOSTILE_VALUES: tuple[Any, ...] = (
    None, True, -1, 0, 2**31, 10**30, -(10**30), 1e308, float("nan"), float("inf"), "",
    "\x1b]0;pwned\x07", "../../etc/passwd", "a" * 100_000, [], {}, [1] * 1000, {"a": {"b": {}}},
    "torchvision:MNIST", {"dataset": "torchvision:MNIST", "download": True, "root": "/tmp/x"},
    [65536, 65536], [0, 0], [3, 8], "\udce9", 3.5,
)  # fmt: skip


def seed_bundle(folder: Path) -> Path:
    """A small valid bundle to mutate."""
    import torch

    from archspec.bundle import save_bundle
    from archspec.compile import build
    from archspec.preprocess import Preprocessing
    from archspec.spec import load_spec

    spec = load_spec(SPEC)
    torch.manual_seed(0)
    pre = Preprocessing(channels=1, size=(8, 8), mean=[0.5], std=[0.25])
    return save_bundle(
        folder, spec, build(spec).state_dict(), preprocessing=pre, class_names=["a", "b", "c"]
    )


def seed_image() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (6, 5), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def seed_journal(folder: Path) -> bytes:
    """The journal of a tiny archspec study (its record included), as bytes."""
    import optuna

    from archspec.search.study.heartbeat import open_storage
    from archspec.search.study.records import KEY, StudyRecord, write_study_record

    path = folder / "seed.log"
    study = optuna.create_study(study_name="s", storage=open_storage(str(path)))
    record = StudyRecord(
        definition="fuzz.yaml", mode="free", metrics=["accuracy"], directions=["maximize"],
        seed=0, base="fuzz", base_spec=SPEC, base_params=1, base_flops=1, base_size=8,
        num_classes=3, dataset="digits", split=(6, 2, 2), setup={},
    )  # fmt: skip
    write_study_record(study, KEY, record)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    return path.read_bytes()


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One random damage: flipped bytes, a cut, inserted garbage, a repeated span."""
    data = bytearray(data)
    how = rng.randrange(4)
    if how == 0 and data:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif how == 1 and data:
        del data[rng.randrange(len(data)) :]
    elif how == 2:
        at = rng.randrange(len(data) + 1)
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif data:
        start = rng.randrange(len(data))
        data[start:start] = data[start : start + rng.randint(1, 256)] * rng.randint(1, 8)
    return bytes(data)


def mutate_manifest(manifest: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A hostile value in a random place, a key removed or an unknown key added."""
    manifest = json.loads(json.dumps(manifest))
    path = rng.choice([p for p, _ in walk(manifest)][1:])
    *parents, last = path
    node = manifest
    for key in parents:
        node = node[key]
    how = rng.randrange(3)
    if how == 0:
        node[last] = rng.choice(HOSTILE_VALUES)
    elif how == 1 and isinstance(node, dict):
        del node[last]
    elif isinstance(node, dict):
        node[rng.choice(["surprise", "__class__", "format"])] = rng.choice(HOSTILE_VALUES)
    return manifest


def rehash(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Re-record every hash, as a careful forger would."""
    from archspec.bundle import SPEC_FILE, WEIGHTS_FILE, manifest_digest

    for key, name in (("weights_sha256", WEIGHTS_FILE), ("spec_sha256", SPEC_FILE)):
        file = folder / name
        if file.is_file() and not file.is_symlink():
            manifest[key] = hashlib.sha256(file.read_bytes()).hexdigest()
    manifest["sha256"] = manifest_digest(manifest)
    return manifest


def mutated_bundle(seed: Path, target: Path, rng: random.Random) -> Path:
    """A copy of the bundle `seed` at `target` with 1-3 random mutations."""
    from archspec.bundle import MANIFEST_FILE, SPEC_FILE, WEIGHTS_FILE

    shutil.copytree(seed, target)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    for _ in range(rng.randint(1, 3)):
        what = rng.randrange(6)
        if what == 0:
            manifest = mutate_manifest(manifest, rng)
        elif what in (1, 2):
            name = rng.choice([SPEC_FILE, WEIGHTS_FILE])
            file = target / name
            if file.is_file() and not file.is_symlink():
                file.write_bytes(mutate_bytes(file.read_bytes(), rng))
        elif what == 3:
            file = target / rng.choice([SPEC_FILE, WEIGHTS_FILE, MANIFEST_FILE])
            if file.exists() or file.is_symlink():
                file.unlink() if not file.is_dir() else shutil.rmtree(file)
            special = rng.randrange(3)
            if special == 0:
                os.mkfifo(file)
            elif special == 1:
                os.symlink("/etc/passwd", file)
            else:
                file.mkdir()
        elif what == 4:
            depth = rng.choice([100, 5_000, 200_000])
            manifest["provenance"] = json.loads("[" * min(depth, 900) + "]" * min(depth, 900))
        else:
            manifest = rehash(target, manifest)
    file = target / MANIFEST_FILE
    if file.is_file() and not file.is_symlink():
        if rng.random() < 0.5:
            manifest = rehash(target, manifest)
        text = json.dumps(manifest)
        if rng.random() < 0.05:
            text = "[" * 200_000 + "]" * 200_000
        file.write_text(text, errors="surrogateescape")
    return target


def check(kind: str, subject: Path, *, time_limit_s: float = TIME_LIMIT_S) -> Outcome:
    """The promise for one mutated file: used or refused with an ArchspecError, in time."""
    return outcome_of(lambda: _use(kind, subject), time_limit_s)


def _use(kind: str, subject: Path) -> bool:
    if kind == "bundle":
        import math

        from archspec.bundle import load_bundle
        from archspec.predict import predict_files

        bundle = load_bundle(subject)
        image = subject.parent / "probe.png"
        image.write_bytes(seed_image())
        for result in predict_files(bundle, [image], topk=3):
            if result.error is None and not all(math.isfinite(p) for _, p in result.top):
                raise AssertionError(f"non-finite probabilities {result.top}")
        return True
    if kind == "image":
        from archspec.images import read_image

        read_image(subject, "RGB")
        read_image(subject, "L", size=(4, 4))
        return True
    from archspec.search.study.storage import load_study

    load_study("s", str(subject)).get_trials()
    return True
