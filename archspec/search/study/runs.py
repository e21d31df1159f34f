"""A study's folder, `runs/<study>/`: who owns it (`study.json`), and the trained weights kept
there per network (`weights/<key>.safetensors`). The only place that spells the layout."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from archspec.errors import SearchError
from archspec.search.study.optuna_private import study_id
from archspec.spec.dump import write_text_atomic

if TYPE_CHECKING:
    import torch
    from torch import nn


def study_folder(study_name: str) -> Path:
    """Where a study's files go (plots, weights, bundles), whatever its storage."""
    return Path("runs") / study_name


OWNER_FILE = "study.json"


def _storage_where(url: str) -> tuple[str, str]:
    """(the storage as an absolute, comparable string; the URL as shown, without password)."""
    import os

    from archspec.search.study.heartbeat import is_url

    if not is_url(url):
        return os.path.abspath(url), url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(url[len("sqlite:///") :]), url
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.render_as_string(hide_password=False), parsed.render_as_string(hide_password=True)


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _held(folder: Path) -> dict | None:
    import json

    try:
        held = json.loads((folder / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return held if isinstance(held, dict) else None


def _foreign(folder: Path, name: str, held: dict, shown: str) -> SearchError:
    return SearchError(
        f"{folder}/ holds the files of another study named {name!r} (in "
        f"{held.get('storage', '?')}); this one is in {shown}: run the search with "
        f"--study-name NAME to give this one its own folder, or move {folder}/ away"
    )


def claim_folder(folder: Path, study: optuna.Study, url: str) -> None:
    """Make `folder` (runs/<study>/) this study's, or refuse when it holds another study's
    files: two studies of one name in different storages would overwrite each other's
    weights and bundles. The owner is the storage (paths made absolute) and the study's id
    in it, recorded in folder/study.json (a hash, and the URL without its password)."""
    import json

    where, shown = _storage_where(url)
    owner = _sha(f"{where}#{study_id(study)}")
    held = _held(folder)
    if held is not None and held.get("owner") not in (None, owner):
        raise _foreign(folder, study.study_name, held, shown)
    if held is None or held.get("owner") != owner:
        folder.mkdir(parents=True, exist_ok=True)
        record = {"study": study.study_name, "storage": shown, "owner": owner}
        record["storage_id"] = _sha(where)
        write_text_atomic(folder / OWNER_FILE, json.dumps(record))


def check_storage(folder: Path, study_name: str, url: str) -> None:
    """Before a study exists in `url` (a launcher starting workers): refuse at once when
    `folder` belongs to a study in another storage, as claim_folder would in every worker."""
    where, shown = _storage_where(url)
    held = _held(folder)
    if held is not None and held.get("storage_id") not in (None, _sha(where)):
        raise _foreign(folder, study_name, held, shown)


def owned_folder(study: optuna.Study, url: str) -> Path:
    """runs/<study>/, checked to be this study's before anything is read from it: refused
    when it belongs to a study of the same name in another storage, or to no recorded study
    (its files cannot be told from another's)."""
    folder = study_folder(study.study_name)
    where, shown = _storage_where(url)
    held = _held(folder)
    if held is None:
        if folder.exists():
            raise SearchError(
                f"{folder}/ names no owner ({OWNER_FILE} is missing): its weights cannot be told "
                f"from another study's; move {folder}/ away and run the search of "
                f"{study.study_name!r} again to keep its weights"
            )
        return folder
    if held.get("owner") != _sha(f"{where}#{study_id(study)}"):
        raise _foreign(folder, study.study_name, held, shown)
    return folder


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
