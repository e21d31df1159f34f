"""A rerun that finds the study's final step (family, re-evaluation) claimed by a live process
says so, naming the holder and when its claim lapses, and exits non-zero; with --wait it waits
until that process is done and then reports its results."""

import threading
import time

import optuna
import pytest

from archspec.errors import SearchError
from archspec.search import load_search, recipe, run_search
from archspec.search.study.claims import CLAIM_PREFIX, owner, running
from archspec.search.study.optuna_private import storage_of, study_id
from tests.search.stubs import stub_train


def _hold(study, key):
    """Take the final step's claim as another live process would."""
    storage_of(study).set_study_system_attr(study_id(study), f"{CLAIM_PREFIX}{key}:0", owner())


def test_a_final_step_held_elsewhere_is_said_and_waited_for(write_def, monkeypatch):
    monkeypatch.setattr(recipe, "train", stub_train([]))
    path = write_def(trials=1, evaluation={"seeds": 0})
    defn = load_search(path)
    study = run_search(defn, quiet=True, finalize=False).study
    key = f"final:2:seeds=0:top_k={defn.evaluation.top_k}"
    _hold(study, key)
    assert running(study, key)["pid"] > 0
    with pytest.raises(SearchError) as info:
        run_search(defn, quiet=True)
    message = str(info.value)
    assert (
        "its final step (the family and the seeds re-evaluation) is running in another process"
        in message
        and "lapses at" in message
        and "--wait" in message
    )

    def finish():  # the holder completes its step a moment later
        time.sleep(1.0)
        storage_of(study).set_study_system_attr(
            study_id(study), f"{CLAIM_PREFIX}{key}:0", {**owner(), "done": True}
        )

    threading.Thread(target=finish, daemon=True).start()
    start = time.perf_counter()
    result = run_search(defn, quiet=True, wait=True)
    assert time.perf_counter() - start >= 0.9 and result.study.study_name == "tiny"
    assert running(optuna.load_study(study_name="tiny", storage=defn.storage_url), key) is None


def test_a_worker_that_trained_trials_waits_for_the_final_step_held_elsewhere(
    write_def, monkeypatch
):
    # three machines on one study: the one that finishes its last trial while another runs the
    # final step waits for it and exits with the results, not with exit 1 (no --wait needed)
    monkeypatch.setattr(recipe, "train", stub_train([]))
    path = write_def(trials=2, evaluation={"seeds": 0})
    defn = load_search(path)
    study = run_search(defn, quiet=True, finalize=False, trials=1).study
    key = f"final:3:seeds=0:top_k={defn.evaluation.top_k}"
    _hold(study, key)

    def finish():
        time.sleep(1.0)
        storage_of(study).set_study_system_attr(
            study_id(study), f"{CLAIM_PREFIX}{key}:0", {**owner(), "done": True}
        )

    threading.Thread(target=finish, daemon=True).start()
    start = time.perf_counter()
    result = run_search(defn, quiet=True)
    assert result.added == 1 and time.perf_counter() - start >= 0.9
