"""Model bundles: a folder with the fully resolved `spec.yaml`, `weights.safetensors` and a
versioned manifest `archspec.json` (versions, weights hash, params, FLOPs, input, preprocessing,
class names, metrics, provenance). Written atomically; loaded with hash and parameter checks;
nothing in a bundle is ever unpickled."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from archspec.errors import BundleError
from archspec.preprocess import Preprocessing
from archspec.spec.model import Spec

if TYPE_CHECKING:
    import torch
    from torch import nn

FORMAT = "archspec.bundle"
VERSION = 1
SPEC_FILE = "spec.yaml"
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "archspec.json"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provenance(_Record):
    """Where the weights come from: a search trial (study, trial or family member phi) or
    `archspec train`; the recipe (the search definition's `training:` section), the data
    (its `data:` section) and the seed they were trained with."""

    source: Literal["search", "train"]
    spec: str | None = None  # what the spec was given as (file, zoo name, bundle)
    study: str | None = None
    storage: str | None = None
    trial: int | None = None
    phi: int | None = None
    seed: int | None = None
    data: dict[str, Any] | None = None
    recipe: dict[str, Any] | None = None


class Manifest(_Record):
    """archspec.json. `params` and `flops` are the static analysis of spec.yaml (FLOPs = 2 x
    MACs); `weights_sha256` is the hash of weights.safetensors."""

    format: Literal["archspec.bundle"] = FORMAT
    version: Literal[1] = VERSION
    name: str
    archspec_version: str
    torch_version: str
    created: str  # ISO 8601, UTC
    weights_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    params: Annotated[int, Field(ge=0)]
    flops: Annotated[int, Field(ge=0)]
    input_channels: Annotated[int, Field(ge=1)]
    input_size: tuple[int, int]  # (height, width)
    preprocessing: Preprocessing
    class_names: list[str]
    metrics: dict[str, float | int] = Field(default_factory=dict)
    provenance: Provenance


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
    files = {
        SPEC_FILE: dump_spec(spec, header=f"{spec.name}: the architecture of this bundle"),
        WEIGHTS_FILE: weights,
        MANIFEST_FILE: manifest.model_dump_json(indent=2) + "\n",
    }
    _write_folder(path, files, overwrite)
    return path


def load_bundle(path: str | Path, *, device: str | torch.device | None = None) -> Bundle:
    """Load a bundle: the manifest is validated, the weights' sha256 and the rebuilt model's
    parameter count are checked against it, and the model is returned in eval mode."""
    import safetensors.torch

    from archspec.spec import load_spec

    path = Path(path)
    manifest = read_manifest(path)
    weights_file = path / WEIGHTS_FILE
    spec_file = path / SPEC_FILE
    for file in (weights_file, spec_file):
        if not file.is_file():
            raise BundleError(f"{path}: the bundle has no {file.name}")
    data = weights_file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest.weights_sha256:
        raise BundleError(
            f"{weights_file}: sha256 {digest[:12]}... does not match the manifest's "
            f"{manifest.weights_sha256[:12]}...; the weights were changed or damaged"
        )
    spec = load_spec(spec_file)
    try:
        state_dict = safetensors.torch.load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise BundleError(f"{weights_file}: not a safetensors file ({exc})") from exc
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
    load_weights(model, state_dict, str(weights_file))
    _check_finite(state_dict, weights_file)
    if device is not None:
        model = model.to(device)
    return Bundle(path, spec, model.eval(), manifest)


def _check_finite(state_dict: dict[str, torch.Tensor], file: Path) -> None:
    import torch

    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise BundleError(f"{file}: {name} holds NaN or infinite values")


def read_manifest(path: str | Path) -> Manifest:
    """The validated manifest of the bundle folder `path`."""
    path = Path(path)
    file = path / MANIFEST_FILE
    if not file.is_file():
        what = "no such folder" if not path.exists() else f"no {MANIFEST_FILE}"
        raise BundleError(f"{path}: not a model bundle ({what})")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleError(f"{file}: not an archspec bundle manifest (format is not {FORMAT!r})")
    version = data.get("version")
    if version != VERSION:
        hint = "; upgrade archspec" if isinstance(version, int) and version > VERSION else ""
        raise BundleError(
            f"{file}: bundle version {version!r}; this archspec reads version {VERSION}{hint}"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BundleError(f"{file}: {where}: {first['msg']}") from exc


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
