"""Where studies live: foreign and old studies refused, the default storage, one study per
`runs/<study>/` folder."""

import json

import optuna
import pytest

from archspec.errors import SearchError
from archspec.search import load_search, load_study, recipe, run_search
from archspec.search.study.records import KEY
from tests.search.stubs import stub_train

COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


def test_foreign_and_old_studies_are_refused(write_def, tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "train", stub_train([]))
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    foreign = optuna.create_study(study_name="tiny", storage=storage)
    foreign.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(SearchError, match="was not created by archspec search"):
        run_search(load_search(write_def(trials=1)), storage=storage, quiet=True)
    with pytest.raises(SearchError, match="was not created by archspec search"):
        load_study("tiny", storage)

    run_search(load_search(write_def("new", trials=1)), storage=storage, quiet=True)
    study = load_study("new", storage)
    old = json.loads(study.user_attrs[KEY])
    old.pop("schema_version")
    study.set_user_attr(KEY, old)
    with pytest.raises(SearchError, match=r"different archspec \(record schema 0"):
        load_study("new", storage)
    # a study of the previous archspec (schema 1: the record as a dict attribute) is refused
    study.set_user_attr(KEY, {**old, "schema_version": 1})
    with pytest.raises(
        SearchError,
        match=r"record schema 1; this version reads 2\); run the "
        r"search again with --study-name NAME",
    ):
        load_study("new", storage)


def test_default_storage_is_runs_study_db(write_def, tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "train", stub_train([]))
    run_search(load_search(write_def(trials=1)), quiet=True)
    assert (tmp_path / "runs" / "tiny.db").exists()
    with pytest.raises(SearchError, match="no study 'other'"):
        load_study("other", f"sqlite:///{tmp_path / 'runs' / 'tiny.db'}")
    with pytest.raises(SearchError, match="no study database"):
        load_study("missing")


def test_a_second_study_of_the_same_name_cannot_take_over_its_files(
    write_def, tmp_path, monkeypatch
):
    """runs/<study>/ holds one study's weights and bundles: a study of the same name in another
    storage is refused before it trains, and the first one's files stay as they were."""
    monkeypatch.setattr(recipe, "train", stub_train([]))
    defn = load_search(write_def(trials=1))
    run_search(defn, quiet=True)
    weights = tmp_path / "runs" / "tiny" / "weights" / "trial-0.safetensors"
    before = weights.read_bytes()
    with pytest.raises(SearchError, match=r"holds the files of another study named 'tiny'"):
        run_search(defn, storage=str(tmp_path / "other.log"), quiet=True)
    assert weights.read_bytes() == before
    run_search(defn, trials=2, quiet=True)  # the owner itself resumes
