"""Every use of Optuna's private API, in one place. archspec needs a few of Optuna's internals
(the storage under a study, the ids its storage calls take, the heartbeat interface, the RDB
attribute table for atomic claims); each is reached through a function here, so an Optuna
release that renames one fails with one line naming it instead of an AttributeError deep in a
search. `PRIVATE_NAMES` lists them; tests/search/study/test_optuna_private.py checks each on
the installed Optuna, and a test refuses these names anywhere outside `archspec/search/study/`.
"""

from __future__ import annotations

import importlib
from typing import Any

import optuna

from archspec.errors import SearchError

# (where, name): a private module attribute, or a private attribute of an Optuna object
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("optuna.storages._heartbeat", "BaseHeartbeat"),
    ("optuna.storages._cached_storage", "_CachedStorage"),
    ("optuna.storages._rdb.models", "StudySystemAttributeModel"),
    ("optuna.Study", "_storage"),
    ("optuna.Study", "_study_id"),
    ("optuna.Trial", "_trial_id"),
    ("optuna.trial.FrozenTrial", "_trial_id"),
    ("optuna.storages._heartbeat.BaseHeartbeat", "_get_stale_trial_ids"),  # implemented
    ("optuna.storages._cached_storage._CachedStorage", "_backend"),
    ("optuna.storages.JournalStorage", "_backend"),
    ("optuna.storages.journal.JournalFileBackend", "_file_path"),
)


def _missing(where: str, name: str) -> SearchError:
    return SearchError(
        f"optuna {optuna.__version__} has no {where}.{name}, which archspec needs; install the "
        "Optuna version named in archspec's requirements"
    )


def _attr(obj: Any, where: str, name: str) -> Any:
    try:
        return getattr(obj, name)
    except AttributeError:
        raise _missing(where, name) from None


def private_module_attr(module: str, name: str) -> Any:
    """`name` from Optuna's private `module` (one of PRIVATE_NAMES)."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise _missing(module, name) from None


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study reads and writes (possibly Optuna's cache over an RDB storage)."""
    return _attr(study, "optuna.Study", "_storage")


def study_id(study: optuna.Study) -> int:
    return _attr(study, "optuna.Study", "_study_id")


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage's id of a trial (storage calls take ids, not numbers)."""
    where = "optuna.Trial" if isinstance(trial, optuna.Trial) else "optuna.trial.FrozenTrial"
    return _attr(trial, where, "_trial_id")


def backend_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage under Optuna's cache layer (`create_study` wraps an RDBStorage in one)."""
    cached = private_module_attr("optuna.storages._cached_storage", "_CachedStorage")
    storage = storage_of(study)
    if isinstance(storage, cached):
        return _attr(storage, "optuna.storages._cached_storage._CachedStorage", "_backend")
    return storage


def journal_backend(storage: optuna.storages.JournalStorage) -> Any:
    return _attr(storage, "optuna.storages.JournalStorage", "_backend")


def journal_file(backend: Any) -> str:
    """The path of a JournalFileBackend's file."""
    return _attr(backend, "optuna.storages.journal.JournalFileBackend", "_file_path")


def base_heartbeat() -> type:
    """Optuna's heartbeat interface (RDBStorage implements it; so does archspec's journal)."""
    return private_module_attr("optuna.storages._heartbeat", "BaseHeartbeat")


def study_system_attribute_model() -> type:
    """The RDB table of study system attributes, with its unique (study, key) constraint."""
    return private_module_attr("optuna.storages._rdb.models", "StudySystemAttributeModel")


# the logger whose records of trials failed by an interrupt archspec filters (it says why itself)
OPTIMIZE_LOGGER = "optuna.study._optimize"
