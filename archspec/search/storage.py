"""Where studies live: the storage URL, creating or resuming a study (refusing a changed
setup), and loading a stored study for report and export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from archspec.errors import Location, SearchError
from archspec.search.data import Dataset
from archspec.search.definition import SearchDef, default_storage
from archspec.search.samplers import make_pruner, make_sampler
from archspec.spec.dump import dump_spec

STUDY_ATTR = "archspec"  # study user attribute: all that report and export need
# Sections whose change makes new trials incomparable with the stored ones.
FINGERPRINT = (
    "mode",
    "space",
    "compound",
    "data",
    "training",
    "objectives",
    "reward",
    "constraints",
    "latency",
)


def storage_url(url: str) -> str:
    """The URL, with the folder of an SQLite file created."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)
    return url


def open_study(
    defn: SearchDef, dataset: Dataset, *, storage: str | None = None, seed: int | None = None
) -> optuna.Study:
    """Create the study, or load it to add trials when it exists (refusing a changed setup)."""
    seed = defn.seed if seed is None else seed
    url = storage_url(storage or defn.storage_url)
    info = _study_info(defn, dataset, seed)
    try:
        study = optuna.create_study(
            study_name=defn.study,
            storage=url,
            directions=defn.directions,
            load_if_exists=True,
            sampler=make_sampler(defn, seed),
            pruner=make_pruner(defn),
        )
    except (ValueError, ImportError) as exc:
        raise SearchError(f"storage {url!r}: {exc}", Location(defn.file)) from exc
    stored = study.user_attrs.get(STUDY_ATTR)
    if stored is None:
        study.set_user_attr(STUDY_ATTR, info)
    else:
        _check_resumable(defn, stored, info, study)
    # A resumed study gets a sampler seeded past its trials, so it does not repeat them.
    study.sampler = make_sampler(defn, seed + len(study.trials))
    return study


def _study_info(defn: SearchDef, dataset: Dataset, seed: int) -> dict[str, Any]:
    data = defn.model_dump(mode="json", include=set(FINGERPRINT))
    return {
        "definition": defn.file,
        "mode": defn.mode,
        "metrics": defn.metrics,
        "directions": defn.directions,
        "seed": seed,
        "base": defn.base,
        "base_spec": dump_spec(defn.base_spec),
        "num_classes": dataset.num_classes,
        "dataset": dataset.name,
        "split": [len(dataset.train_idx), len(dataset.val_idx)],
        "setup": data,
    }


def _check_resumable(
    defn: SearchDef, stored: dict[str, Any], info: dict[str, Any], study: optuna.Study
) -> None:
    changed = [k for k in FINGERPRINT if stored["setup"].get(k) != info["setup"].get(k)]
    if stored["base_spec"] != info["base_spec"]:
        changed.append("base")
    if stored["seed"] != info["seed"]:
        changed.append(f"seed ({stored['seed']} -> {info['seed']})")
    if [d.name.lower() for d in study.directions] != defn.directions:
        changed.append("objective directions")
    if changed:
        raise SearchError(
            f"study {defn.study!r} exists with a different setup ({', '.join(changed)}); its "
            "trials would not compare with new ones. Use another study name or --storage.",
            Location(defn.file),
        )


def study_info(study: optuna.Study) -> dict[str, Any]:
    info = study.user_attrs.get(STUDY_ATTR)
    if info is None:
        raise SearchError(f"study {study.study_name!r} was not created by archspec search")
    return info


def load_study(study: str, storage: str | None = None) -> optuna.Study:
    """A stored study from a search definition file, or a study name (+ storage URL)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if study.endswith((".yaml", ".yml")):
        from archspec.search.definition import load_search

        defn = load_search(study)
        name, url = defn.study, storage or defn.storage_url
    else:
        name, url = study, storage or default_storage(study)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        raise SearchError(
            f"no study database {url[len('sqlite:///') :]!r}; run `archspec search` first, "
            "or pass --storage"
        )
    try:
        return optuna.load_study(study_name=name, storage=url)
    except KeyError as exc:
        names = optuna.get_all_study_names(url)
        raise SearchError(
            f"no study {name!r} in {url}; it holds: {', '.join(names) or 'none'}"
        ) from exc
