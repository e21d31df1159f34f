"""The shipped specs (specs/ in a checkout, archspec/_specs in a wheel) and create_model()."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archspec.errors import ArchspecError, SpecError, unknown_message

if TYPE_CHECKING:
    from torch import fx

_HERE = Path(__file__).resolve().parent


def _first_dir(*candidates: Path) -> Path:
    for path in candidates:
        if path.is_dir():
            return path
    return candidates[-1]


def spec_dir() -> Path:
    """Where the shipped architecture specs are."""
    return _first_dir(_HERE / "_specs", _HERE.parent / "specs")


def search_dir() -> Path:
    """Where the shipped search definitions are."""
    return _first_dir(_HERE / "_search", _HERE.parent / "search")


def list_specs() -> list[str]:
    return sorted(p.stem for p in spec_dir().glob("*.yaml"))


def find_file(
    name_or_path: str | Path, folder: Path, kind: str, error: type[ArchspecError]
) -> Path:
    """A YAML file by path, or by the name of one shipped in `folder`."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    candidate = folder / f"{name_or_path}.yaml"
    if not candidate.exists():
        shipped = sorted(p.stem for p in folder.glob("*.yaml"))
        raise error(unknown_message(kind, str(name_or_path), shipped))
    return candidate


def spec_path(name_or_path: str | Path) -> Path:
    """A zoo name (`resnet50`) or a path to a spec file."""
    return find_file(name_or_path, spec_dir(), "model", SpecError)


def create_model(
    name: str,
    *,
    scale: str | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    **options: Any,
) -> fx.GraphModule:
    """Build a zoo model by name, timm-style: `create_model("resnet50", num_classes=10)`.
    `scale` picks one of the spec's named presets (e.g. efficientnet_b0's "b3");
    `features_only=True` returns the list of feature maps instead of the logits (timm's
    backbones; `out_indices` picks some, `model.feature_info` describes them)."""
    from archspec.compile import build
    from archspec.spec import load_spec

    spec = load_spec(spec_path(name))
    if scale is not None:
        from archspec.scaling.rewrite import apply_preset

        spec = apply_preset(spec, scale)
    return build(spec, features_only=features_only, out_indices=out_indices, **options)
