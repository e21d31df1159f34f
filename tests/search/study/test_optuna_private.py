"""Every private Optuna name archspec uses (archspec/search/study/optuna_private.py) exists in the
installed Optuna: an upgrade that removes one fails here, naming it, not in the middle of a
search."""

import importlib

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from archspec.errors import SearchError
from archspec.search.study import optuna_private
from archspec.search.study.optuna_private import PRIVATE_NAMES


def _resolve(where: str):
    """A module, or a class inside one (`optuna.storages.JournalStorage`)."""
    try:
        return importlib.import_module(where)
    except ImportError:
        module, _, name = where.rpartition(".")
        return getattr(_resolve(module), name)


@pytest.fixture
def objects(tmp_path):
    """One real instance of each class whose private attributes archspec reads."""
    rdb = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    trial = rdb.ask()
    journal = JournalStorage(JournalFileBackend(str(tmp_path / "s.log")))
    return {
        "optuna.Study": rdb,
        "optuna.Trial": trial,
        "optuna.trial.FrozenTrial": rdb.trials[0],
        "optuna.storages._cached_storage._CachedStorage": optuna_private.storage_of(rdb),
        "optuna.storages.JournalStorage": journal,
        "optuna.storages.journal.JournalFileBackend": optuna_private.journal_backend(journal),
    }


@pytest.mark.parametrize(
    ("where", "name"), PRIVATE_NAMES, ids=[f"{w}.{n}" for w, n in PRIVATE_NAMES]
)
def test_each_private_name_exists_in_the_installed_optuna(where, name, objects):
    if where in objects:  # an attribute set on instances
        holder = objects[where]
    else:  # a module attribute, or a method of a class
        holder = _resolve(where)
    assert hasattr(holder, name), (
        f"optuna {optuna.__version__} has no {where}.{name}: archspec/search/study/"
        "optuna_private.py must follow Optuna's change"
    )


def test_the_accessors_work_on_real_studies(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    trial = study.ask()
    assert optuna_private.trial_id(trial) == optuna_private.trial_id(study.trials[0])
    assert isinstance(optuna_private.backend_of(study), optuna.storages.RDBStorage)
    assert optuna_private.study_id(study) == study._study_id
    journal = JournalStorage(JournalFileBackend(str(tmp_path / "s.log")))
    assert optuna_private.journal_file(optuna_private.journal_backend(journal)).endswith("s.log")


def test_a_removed_private_name_is_one_line_naming_it():
    class Bare:
        pass

    with pytest.raises(SearchError, match=r"has no optuna.Study._storage, which archspec needs"):
        optuna_private.storage_of(Bare())
    with pytest.raises(SearchError, match=r"has no optuna.storages._nowhere.Thing"):
        optuna_private.private_module_attr("optuna.storages._nowhere", "Thing")
