"""What is exported, as one record: the spec, the eval-mode module, where both come from. Made
from a spec (random or given weights) or a bundle here, from a study's trial by
archspec.search.resolve; archspec.sources decides which a command named."""

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
    bundle: Path | None = None  # the bundle it was loaded from (its data checks int8 files)


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


def from_bundle(path: Path) -> Source:
    """A bundle's architecture and weights, with a header saying where it was trained."""
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
        path,
    )
