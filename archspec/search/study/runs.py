"""A study's folder, `runs/<study>/`: who owns it (`study.json`), and the trained weights kept
there per network (`weights/<key>.safetensors`). The only place that spells the layout."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from archspec.search.study.optuna_private import study_id
from archspec.spec.dump import write_text_atomic

if TYPE_CHECKING:
    import torch
    from torch import nn


def study_folder(study_name: str) -> Path:
    """Where a study's files go (plots, weights, bundles), whatever its storage."""
    return Path("runs") / study_name


OWNER_FILE = "study.json"


def claim_folder(folder: Path, study: optuna.Study, url: str) -> None:
    """Make `folder` (runs/<study>/) this study's, or refuse when it holds another study's
    files: two studies of one name in different storages would overwrite each other's
    weights and bundles. The owner is the storage (paths made absolute) and the study's id
    in it, recorded in folder/study.json (a hash, and the URL without its password)."""
    import hashlib
    import json
    import os

    from archspec.errors import SearchError
    from archspec.search.study.heartbeat import is_url
    from archspec.spec.dump import write_text_atomic

    shown = url
    if not is_url(url):
        where = os.path.abspath(url)
    elif url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        where = "sqlite:///" + os.path.abspath(url[len("sqlite:///") :])
    else:
        from sqlalchemy.engine import make_url

        where = make_url(url).render_as_string(hide_password=False)
        shown = make_url(url).render_as_string(hide_password=True)
    owner = hashlib.sha256(f"{where}#{study_id(study)}".encode()).hexdigest()
    file = folder / OWNER_FILE
    try:
        held = json.loads(file.read_text())
    except (OSError, ValueError):
        held = None
    if isinstance(held, dict) and held.get("owner") not in (None, owner):
        raise SearchError(
            f"{folder}/ holds the files of another study named {study.study_name!r} (in "
            f"{held.get('storage', '?')}); this one is in {shown}: give it another study "
            "name, or move that folder away"
        )
    if held is None or held.get("owner") != owner:
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(
            file, json.dumps({"study": study.study_name, "storage": shown, "owner": owner})
        )


def trial_key(number: int) -> str:
    return f"trial-{number}"


def family_key(phi: int) -> str:
    return f"phi-{phi}"


class WeightStore:
    """The trained weights of a study, one safetensors file per network (written atomically)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def save(self, key: str, model: nn.Module) -> Path:
        import safetensors.torch

        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        return write_text_atomic(self.path(key), safetensors.torch.save(tensors))

    def load(self, key: str) -> dict[str, torch.Tensor] | None:
        import safetensors.torch

        path = self.path(key)
        return safetensors.torch.load_file(path) if path.is_file() else None
