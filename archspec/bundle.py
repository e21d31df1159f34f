"""Model bundles: a folder with the fully resolved `spec.yaml`, `weights.safetensors` and a
versioned manifest `archspec.json` (versions, hashes, params, FLOPs, input, preprocessing,
class names, metrics, provenance). Written atomically; loaded with hash and parameter checks;
nothing in a bundle is ever unpickled.

A bundle is data, never instructions: its three files must be regular files (no symlinks,
FIFOs or devices) within size bounds; the manifest's own sha256 covers everything it records,
the spec's and the weights' sha256 cover the other two files, so an edit is reported as
tampering; every recorded field is checked against the spec and the weights with bounds; a
file that is not a valid spec is never quoted; a recorded dataset never chooses a download
or a path (archspec.train.evaluate)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from archspec.errors import BundleError
from archspec.preprocess import Preprocessing
from archspec.spec.model import Spec
from archspec.text import shown

if TYPE_CHECKING:
    import torch
    from torch import nn

FORMAT = "archspec.bundle"
VERSION = 2  # 2: the manifest and the spec have a sha256; version 1 bundles are still read
READS = (1, 2)
SPEC_FILE = "spec.yaml"
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "archspec.json"
MAX_MANIFEST_BYTES = 1 << 20
MAX_SPEC_BYTES = 4 << 20
MAX_WEIGHTS_BYTES = 64 << 30
MAX_CLASSES = 1 << 20
MAX_NAME_CHARS = 1024
MAX_SEED = 2**32 - 1
# tensor dtypes a bundle may hold: what archspec models have (torch's float and integer types)
WEIGHT_DTYPES = {
    "float32",
    "float16",
    "bfloat16",
    "float64",
    "int64",
    "int32",
    "int8",
    "uint8",
    "bool",
}


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


ClassName = Annotated[str, Field(max_length=MAX_NAME_CHARS)]
Short = Annotated[str, Field(max_length=4096)]


class Provenance(_Record):
    """Where the weights come from: a search trial (study, trial or family member phi) or
    `archspec train`; the recipe (the search definition's `training:` section), the data
    (its `data:` section) and the seed they were trained with."""

    source: Literal["search", "train"]
    spec: Short | None = None  # what the spec was given as (file, zoo name, bundle)
    study: Short | None = None
    storage: Short | None = None
    trial: Annotated[int, Field(ge=0, le=1 << 31)] | None = None
    phi: Annotated[int, Field(ge=0, le=64)] | None = None
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | None = None
    data: dict[str, Any] | None = None  # a `data:` section: checked where it is used
    recipe: dict[str, Any] | None = None


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Side = Annotated[int, Field(ge=1, le=1 << 16)]


class Manifest(_Record):
    """archspec.json. `params` and `flops` are the static analysis of spec.yaml (FLOPs = 2 x
    MACs); `weights_sha256` is the hash of weights.safetensors."""

    format: Literal["archspec.bundle"] = FORMAT
    version: Literal[1, 2] = VERSION
    name: Short
    archspec_version: Short
    torch_version: Short
    created: Short  # ISO 8601, UTC
    weights_sha256: Sha256
    spec_sha256: Sha256 | None = None  # version 2 on
    params: Annotated[int, Field(ge=0, le=1 << 48)]
    flops: Annotated[int, Field(ge=0, le=1 << 62)]
    input_channels: Annotated[int, Field(ge=1, le=4096)]
    input_size: tuple[Side, Side]  # (height, width)
    preprocessing: Preprocessing
    class_names: Annotated[list[ClassName], Field(max_length=MAX_CLASSES)]
    metrics: Annotated[dict[Short, float | int], Field(max_length=1024)] = Field(
        default_factory=dict
    )
    provenance: Provenance
    sha256: Sha256 | None = None  # version 2 on: of every other field (manifest_digest)


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: `model` (eval mode) rebuilt from `spec` with the checked weights."""

    path: Path
    spec: Spec
    model: nn.Module
    manifest: Manifest

    @property
    def preprocess(self) -> Preprocessing:
        return self.manifest.preprocessing

    @property
    def class_names(self) -> list[str]:
        return self.manifest.class_names

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, {self.spec.name}, {self.manifest.params:,} params)"


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / MANIFEST_FILE).is_file()


def save_bundle(
    path: str | Path,
    spec: Spec,
    state_dict: dict[str, torch.Tensor],
    *,
    preprocessing: Preprocessing,
    class_names: list[str] | None = None,
    metrics: dict[str, float | int] | None = None,
    provenance: Provenance | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a bundle folder at `path` atomically (a temporary folder beside it, renamed into
    place): a failure or an interruption leaves no partial bundle. The weights must load into
    the model `spec` builds. An existing bundle is replaced only with `overwrite`."""
    import safetensors.torch
    import torch

    import archspec
    from archspec.analysis import analyze
    from archspec.spec.dump import dump_spec

    path = Path(path)
    _check_target(path, overwrite)
    model = _model(spec, state_dict, f"{path}: the weights")
    cost = analyze(spec)
    params = sum(p.numel() for p in model.parameters())
    if params != cost.params:  # the analysis and the built model always agree; a bug otherwise
        raise BundleError(f"{spec.name}: built {params:,} parameters, analysis {cost.params:,}")
    channels, size = spec.input.channels, spec.input.hw
    if preprocessing.channels != channels or tuple(preprocessing.size) != size:
        raise BundleError(
            f"{path}: the preprocessing gives {preprocessing.channels}x{preprocessing.size} "
            f"inputs; {spec.name} takes {channels}x{list(size)}"
        )
    classes = int(cost.nodes[cost.outputs[0]].shape.dims[0])
    names = class_names if class_names is not None else [str(i) for i in range(classes)]
    if len(names) != classes:
        raise BundleError(f"{path}: {len(names)} class names for {classes} outputs")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = safetensors.torch.save(tensors, metadata={"format": "pt"})
    manifest = Manifest(
        name=spec.name,
        archspec_version=archspec.__version__,
        torch_version=torch.__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        weights_sha256=hashlib.sha256(weights).hexdigest(),
        params=cost.params,
        flops=cost.flops,
        input_channels=channels,
        input_size=size,
        preprocessing=preprocessing,
        class_names=names,
        metrics=metrics or {},
        provenance=provenance or Provenance(source="train"),
    )
    spec_text = dump_spec(spec, header=f"{spec.name}: the architecture of this bundle")
    manifest = manifest.model_copy(
        update={"spec_sha256": hashlib.sha256(spec_text.encode()).hexdigest()}
    )
    manifest = manifest.model_copy(update={"sha256": manifest_digest(manifest.model_dump())})
    files = {
        SPEC_FILE: spec_text,
        WEIGHTS_FILE: weights,
        MANIFEST_FILE: manifest.model_dump_json(indent=2) + "\n",
    }
    _write_folder(path, files, overwrite)
    return path


def load_bundle(path: str | Path, *, device: str | torch.device | None = None) -> Bundle:
    """Load a bundle: the manifest is validated, the weights' sha256 and the rebuilt model's
    parameter count are checked against it, and the model is returned in eval mode."""
    import safetensors.torch

    path = Path(path)
    manifest = read_manifest(path)
    weights_file = path / WEIGHTS_FILE
    spec_file = path / SPEC_FILE
    data = _read_file(weights_file, MAX_WEIGHTS_BYTES)
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest.weights_sha256:
        raise BundleError(
            f"{shown(weights_file)}: sha256 {digest[:12]}... does not match the manifest's "
            f"{manifest.weights_sha256[:12]}...; the weights were changed or damaged"
        )
    spec = _read_spec(spec_file, manifest)
    try:
        state_dict = safetensors.torch.load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError
        why = shown(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise BundleError(f"{shown(weights_file)}: not a safetensors file ({why})") from None
    _check_dtypes(state_dict, weights_file)
    from archspec.compile import build

    model = build(spec)
    params = sum(p.numel() for p in model.parameters())
    if params != manifest.params:
        raise BundleError(
            f"{spec_file}: builds a model with {params:,} parameters; the manifest records "
            f"{manifest.params:,}"
        )
    if (spec.input.channels, spec.input.hw) != (manifest.input_channels, manifest.input_size):
        raise BundleError(
            f"{spec_file}: the input is {spec.input.channels}x{list(spec.input.hw)}; the manifest "
            f"records {manifest.input_channels}x{list(manifest.input_size)}"
        )
    from archspec.analysis import analyze

    outputs = analyze(spec).output_shapes[0]
    classes = outputs.dims[0] if outputs.layout == "C" else None
    if classes is not None and len(manifest.class_names) != classes:
        raise BundleError(
            f"{path / MANIFEST_FILE}: {len(manifest.class_names)} class names for the model's "
            f"{classes} outputs"
        )
    _check_preprocessing(manifest, spec, path)
    load_weights(model, state_dict, str(weights_file))
    _check_finite(state_dict, weights_file)
    if device is not None:
        model = model.to(device)
    return Bundle(path, spec, model.eval(), manifest)


def manifest_digest(fields: dict[str, Any]) -> str:
    """The sha256 a version-2 manifest records of itself: of its other fields as canonical
    JSON (sorted keys, no spaces), so any change to what it records is detected."""
    rest = {k: v for k, v in fields.items() if k != "sha256"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _read_file(file: Path, limit: int) -> bytes:
    """A file of the bundle: a regular file (not a symlink, FIFO or device) of at most `limit`
    bytes."""
    try:
        info = os.lstat(file)
    except FileNotFoundError:
        raise BundleError(f"{shown(file.parent)}: the bundle has no {file.name}") from None
    except OSError as exc:
        raise BundleError(f"{shown(file)}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISLNK(info.st_mode):
        raise BundleError(f"{shown(file)}: is a symbolic link; a bundle holds its own files")
    if not stat.S_ISREG(info.st_mode):
        raise BundleError(f"{shown(file)}: not a regular file")
    if info.st_size > limit:
        raise BundleError(f"{shown(file)}: {info.st_size:,} bytes, over the {limit:,} allowed")
    try:
        with open(file, "rb") as handle:
            raw = handle.read(min(limit, info.st_size) + 1)  # no larger buffer than the file
    except OSError as exc:
        raise BundleError(f"{shown(file)}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > limit:
        raise BundleError(f"{shown(file)}: over the {limit:,} bytes allowed")
    return raw


def _read_spec(file: Path, manifest: Manifest) -> Spec:
    """The bundle's spec, checked against the manifest's hash; a file that is not a valid spec
    is reported without quoting it (it could be anything)."""
    from archspec.errors import ArchspecError
    from archspec.spec.load import spec_from_source
    from archspec.spec.yamlsource import load_yaml

    raw = _read_file(file, MAX_SPEC_BYTES)
    if manifest.spec_sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != manifest.spec_sha256:
            raise BundleError(
                f"{shown(file)}: sha256 {digest[:12]}... does not match the manifest's "
                f"{manifest.spec_sha256[:12]}...; the spec was changed or damaged"
            )
    try:
        return spec_from_source(load_yaml(raw.decode("utf-8"), str(file)))
    except (UnicodeDecodeError, ArchspecError) as exc:
        count = len(getattr(exc, "problems", ())) or 1
        raise BundleError(
            f"{shown(file)}: not a valid archspec spec ({count} problem(s)); the bundle is "
            "damaged or was not written by archspec"
        ) from None


def _check_dtypes(state_dict: dict[str, torch.Tensor], file: Path) -> None:
    for name, tensor in state_dict.items():
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in WEIGHT_DTYPES:
            raise BundleError(
                f"{shown(file)}: {shown(name)} is {dtype}; bundles hold "
                f"{', '.join(sorted(WEIGHT_DTYPES))}"
            )


def _check_preprocessing(manifest: Manifest, spec: Spec, path: Path) -> None:
    """The recorded preprocessing must make the spec's input: its channels and size (as
    save_bundle checks), a load size within bounds."""
    pre = manifest.preprocessing
    if pre.channels != spec.input.channels or tuple(pre.size) != tuple(spec.input.hw):
        raise BundleError(
            f"{shown(path / MANIFEST_FILE)}: preprocessing gives {pre.channels}x"
            f"{list(pre.size)} inputs; the spec takes {spec.input.channels}x"
            f"{list(spec.input.hw)}"
        )
    if pre.load_size is not None and pre.load_size[0] * pre.load_size[1] > 1 << 26:
        raise BundleError(
            f"{shown(path / MANIFEST_FILE)}: preprocessing.load_size {list(pre.load_size)} is "
            "over 64 megapixels"
        )


def _check_finite(state_dict: dict[str, torch.Tensor], file: Path) -> None:
    import torch

    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise BundleError(f"{file}: {name} holds NaN or infinite values")


def read_manifest(path: str | Path) -> Manifest:
    """The validated manifest of the bundle folder `path`."""
    path = Path(path)
    file = path / MANIFEST_FILE
    if not os.path.lexists(file):
        what = "no such folder" if not path.exists() else f"no {MANIFEST_FILE}"
        raise BundleError(f"{shown(path)}: not a model bundle ({what})")
    raw = _read_file(file, MAX_MANIFEST_BYTES)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{shown(file)}: not valid JSON ({shown(exc)})") from None
    except RecursionError:
        raise BundleError(f"{shown(file)}: not a manifest (nested too deeply)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleError(
            f"{shown(file)}: not an archspec bundle manifest (format is not {FORMAT!r})"
        )
    version = data.get("version")
    if version not in READS:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > VERSION
        hint = "; upgrade archspec" if newer else ""
        raise BundleError(
            f"{shown(file)}: bundle version {shown(repr(version), 40)}; this archspec reads "
            f"versions {', '.join(map(str, READS))}{hint}"
        )
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BundleError(f"{shown(file)}: {shown(where, 80)}: {shown(first['msg'])}") from None
    except RecursionError:
        raise BundleError(f"{shown(file)}: not a manifest (nested too deeply)") from None
    if version >= 2:
        if manifest.sha256 is None or manifest.spec_sha256 is None:
            raise BundleError(f"{shown(file)}: a version 2 manifest records its sha256s")
        if manifest_digest(data) != manifest.sha256:
            raise BundleError(
                f"{shown(file)}: the manifest was changed after it was written (its sha256 "
                "does not match what it records): tampered or damaged"
            )
    return manifest


def _model(spec: Spec, state_dict: dict[str, torch.Tensor], what: str) -> nn.Module:
    from archspec.compile import build

    model = build(spec)
    load_weights(model, state_dict, what)
    return model


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """Strict load by name with one readable line for any mismatch (names, shapes, float
    against integer tensors). Names must match exactly: a safetensors file keeps no forward
    order (it stores tensors sorted by dtype and name), so pairing other names in order would
    put tensors of one shape in each other's places; another framework's state_dict in memory,
    in forward order, goes through `archspec.load_torchvision_state_dict`."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k} {list(state_dict[k].shape)} (model: {list(v.shape)})"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    kind = [
        f"{k} {state_dict[k].dtype} (model: {v.dtype})"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].is_floating_point() != v.is_floating_point()
    ]
    for label, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("wrong shape", wrong),
        ("wrong dtype", kind),
    ):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            raise BundleError(f"{what} do not fit the spec: {label}: {', '.join(keys[:3])}{more}")
    model.load_state_dict(state_dict, strict=True)


def _check_target(path: Path, overwrite: bool) -> None:
    if path.exists() or path.is_symlink():
        if not is_bundle(path):
            raise BundleError(f"{path}: exists and is not a bundle; not replacing it")
        if not overwrite:
            raise BundleError(f"{path}: a bundle is already there (overwrite to replace it)")


def _write_folder(path: Path, files: dict[str, str | bytes], overwrite: bool) -> None:
    """All files into a temporary folder next to `path`, then one rename; an existing bundle is
    moved aside first and deleted only once the new one is in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old: Path | None = None
    try:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            with open(tmp / name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp / name, 0o644)
        os.chmod(tmp, 0o755)
        _check_target(path, overwrite)
        if path.exists():
            old = path.with_name(f".{path.name}.{os.getpid()}.old")
            os.rename(path, old)
        try:
            os.rename(tmp, path)
        except BaseException:
            if old is not None:
                os.rename(old, path)
                old = None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


__all__ = [
    "Bundle",
    "BundleError",
    "Manifest",
    "Preprocessing",
    "Provenance",
    "is_bundle",
    "load_bundle",
    "read_manifest",
    "save_bundle",
]
