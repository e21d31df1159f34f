"""What can be exported: a bundle, a spec (file or zoo name, random or given weights) or a study
(its best trial, a trial number or a compound family member), as one record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from archspec.errors import ExportError
from archspec.spec.model import Spec

if TYPE_CHECKING:
    from archspec.preprocess import Preprocessing

SEED = 0  # random weights are drawn after torch.manual_seed(SEED), in a forked RNG


@dataclass
class Source:
    """A model to export: the spec it is built from, the eval-mode module holding the weights
    to export, and a few lines saying where both come from (written into file headers)."""

    spec: Spec
    model: nn.Module
    header: str
    weights: str  # "random (seed 0)", the weights file, or the bundle
    preprocessing: Preprocessing | None = None  # a bundle's: what inputs must look like
    class_names: list[str] | None = None


def from_spec(spec: Spec, header: str, weights: str | Path | None = None) -> Source:
    """Build `spec`; its weights from a .safetensors file (names and shapes checked), else
    random after a fixed seed."""
    from archspec.compile import build

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = build(spec)
    if weights is None:
        return Source(spec, model.eval(), header, f"random (seed {SEED})")
    from archspec.bundle import load_weights

    load_weights(model, read_weights(weights), f"{weights}: the weights")
    return Source(spec, model.eval(), header, str(weights))


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a safetensors file (a header and raw tensors: never a pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if Path(path).is_dir():
        raise ExportError(f"{path}: cannot read weights: is a directory")
    try:
        return load_file(path)
    except (OSError, SafetensorError) as exc:
        raise ExportError(f"{path}: cannot read weights: {exc}") from exc


def load_source(
    source: str | Path,
    *,
    weights: str | Path | None = None,
    trial: str | int = "best",
    phi: int | None = None,
    storage: str | None = None,
) -> Source:
    """A bundle directory, a spec file or zoo name, or a study (a search definition file, or a
    study name with `storage`): its best trial, trial number `trial`, or family member `phi`."""
    from archspec.bundle import is_bundle

    path = Path(source)
    if is_bundle(path):
        if weights is not None:
            raise ExportError(f"{path} is a bundle: it has its weights")
        return _from_bundle(path)
    if _is_search_definition(path) or (not path.exists() and not _is_zoo_name(str(source))):
        return _from_study(str(source), trial, phi, storage, weights)
    from archspec.spec import load_spec
    from archspec.zoo import spec_path

    spec = load_spec(spec_path(source))
    return from_spec(spec, f"{spec.name} from {source}", weights)


def _from_bundle(path: Path) -> Source:
    from archspec.bundle import load_bundle

    bundle = load_bundle(path)
    made = bundle.manifest.provenance
    if made.study is not None:
        origin = f"study {made.study}" + (f", trial {made.trial}" if made.trial is not None else "")
    else:
        origin = f"trained from {made.spec}" if made.spec else made.source
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in bundle.manifest.metrics.items())
    header = f"{bundle.spec.name} from bundle {path} ({origin})" + (
        f"\n{metrics}" if metrics else ""
    )
    return Source(
        bundle.spec,
        bundle.model.eval(),
        header,
        f"bundle {path}",
        bundle.preprocess,
        bundle.class_names,
    )


def _from_study(
    name: str, trial: str | int, phi: int | None, storage: str | None, weights: str | Path | None
) -> Source:
    from archspec.errors import SearchError
    from archspec.search import load_study, trial_spec
    from archspec.search.pick import network_number

    try:
        study = load_study(name, storage)
    except SearchError as exc:
        if name.endswith((".yaml", ".yml")) or storage is not None:
            raise
        raise ExportError(
            f"{name!r} is not a bundle, a spec file, a zoo model or a search definition, "
            f"and as a study name: {exc.message}"
        ) from exc
    spec, header = trial_spec(study, trial, phi)
    if weights is not None:
        return from_spec(spec, header, weights)
    if phi is None and trial != "best":
        trial = network_number(study, trial)  # a repeat's weights are its first trial's
    bundle, stored = _trained(study.study_name, spec, trial, phi)
    if bundle is None and stored is None and phi is None and trial == "best":
        # no best bundle (moved, or not written yet): the weights kept for the best trial
        bundle, stored = _trained(study.study_name, spec, network_number(study, "best"), None)
    if bundle is not None:
        source = _from_bundle(bundle)
        source.header = header
        return source
    if stored is not None:
        return from_spec(spec, header, stored)
    return from_spec(spec, header)


def _trained(
    study: str, spec: Spec, trial: str | int, phi: int | None
) -> tuple[Path | None, Path | None]:
    """(the bundle, else the weights file) the search kept for this trial or family member
    (runs/STUDY/best, trial-N, phi-K; runs/STUDY/weights/KEY.safetensors), if any; a bundle
    counts only when it holds this very network."""
    from archspec.bundle import SPEC_FILE, is_bundle
    from archspec.search.bundles import WeightStore, family_key, study_folder, trial_key
    from archspec.spec import load_spec
    from archspec.spec.dump import dump_spec

    folder = study_folder(study)
    if phi is not None:
        key: str | None = family_key(phi)
    else:
        key = "best" if trial == "best" else trial_key(int(trial))
    bundle = folder / key
    if is_bundle(bundle) and dump_spec(load_spec(bundle / SPEC_FILE)) == dump_spec(spec):
        return bundle, None
    stored = WeightStore(folder / "weights").path(key)
    return None, (stored if key != "best" and stored.is_file() else None)


def _is_zoo_name(name: str) -> bool:
    from archspec.zoo import list_specs

    return name in list_specs()


def _is_search_definition(path: Path) -> bool:
    """A YAML file whose top level names a base spec and no layers of its own."""
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return False
    from archspec.spec.yamlsource import load_yaml, read_text

    data = load_yaml(*read_text(path)).data
    return isinstance(data, dict) and "base" in data and "layers" not in data
