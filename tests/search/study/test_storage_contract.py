"""The contract every storage kind passes (as Optuna's StorageTestCase): create and resume,
records read back as written, first-writer-wins claims across processes, load by name, and
the heartbeat that fails and retries a silent trial."""

import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from archspec.errors import SearchError
from archspec.scaling.measured import Effective
from archspec.search import load_search, load_study, recipe, run_search
from archspec.search.study.claims import claim, holder
from archspec.search.study.heartbeat import open_storage
from archspec.search.study.optuna_private import storage_of, trial_id
from archspec.search.study.records import (
    KEY,
    StudyRecord,
    TrialRecord,
    read_study,
    read_trial,
    trial_spec_text,
    write_study_record,
    write_trial,
)
from archspec.search.study.storage import open_study
from archspec.train.data import load_dataset
from tests.search.stubs import stub_train

KINDS = ["sqlite", "journal", "postgresql"]

STUDY = StudyRecord(
    definition="search/tiny.yaml",
    mode="free",
    metrics=["accuracy", "params"],
    directions=["maximize", "minimize"],
    seed=4_294_967_295,
    base="tiny_effnet.yaml",
    base_spec="name: tiny\nlayers: [conv, pool]  # é\n",
    base_params=41_778,
    base_flops=812_928,
    base_size=12,
    num_classes=10,
    dataset="digits",
    split=(180, 60, 60),
    setup={"space": {"width": {"low": 0.5, "high": 1.0, "step": None}}, "trials": [1, 2.5]},
)
TRIAL = TrialRecord(
    status="pruned",
    reason="pruned at epoch 2 — worse than the median",
    knobs={"depth": 1.0, "width": 0.1 + 0.2, "resolution": 1.0, "kernels": {"stage3": 5}},
    spec_hash="ab" * 32,
    effective=Effective(depth=1.0, width=0.8191623366398992, resolution=1.0, flops_ratio=1 / 3),
    params=27_820,
    flops=580_864,
    size=12,
    latency_ms=4.263499000046522,
    accuracy=None,
    constraints={"valid": 0.0, "max_params": -1e-12},
    history=[0.5, 0.25, 1e-300],
    train_s=0.0,
)


def _archspec_study(url: str, name: str = "tiny") -> optuna.Study:
    """A study in `url` holding an archspec study record, as `archspec search` leaves it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name, storage=open_storage(url), directions=["maximize", "minimize"]
    )
    write_study_record(study, KEY, STUDY)
    return study


def _claim_elsewhere(url: str, key: str) -> tuple[bool, int]:
    """claim(key) from another process: (won, that process's id)."""
    return claim(load_study("tiny", url), key), os.getpid()


@pytest.mark.parametrize("kind", KINDS)
def test_open_study_creates_then_resumes_a_study(kind, storage_url, write_def, monkeypatch):
    url, calls = storage_url(kind), []
    monkeypatch.setattr(recipe, "train", stub_train(calls))
    defn = load_search(write_def(trials=1))
    created = run_search(defn, storage=url, quiet=True, finalize=False)
    assert (created.added, len(created.study.trials)) == (2, 2)  # the base and one trial
    resumed = run_search(defn, trials=3, storage=url, quiet=True, finalize=False)
    assert resumed.study.study_name == "tiny"
    assert (resumed.added, len(resumed.study.trials)) == (2, 4)  # only the missing ones
    assert run_search(defn, trials=3, storage=url, quiet=True, finalize=False).added == 0
    trained = [read_trial(t).status for t in resumed.study.trials].count("trained")
    assert len(calls) == trained
    changed = load_search(write_def(trials=3, training={"epochs": 2}))
    with pytest.raises(SearchError, match=r"exists with a different setup \(training\)"):
        open_study(changed, load_dataset(changed.data, changed.seed), storage=url)


@pytest.mark.parametrize("kind", KINDS)
def test_records_read_back_as_written(kind, storage_url):
    url = storage_url(kind)
    study = _archspec_study(url)
    trial = study.ask()
    write_trial(trial, TRIAL, spec="name: tiny\n")
    study.tell(trial, [0.5, 27_820])
    loaded = load_study("tiny", url)  # a fresh connection to the storage
    assert read_study(loaded) == STUDY
    (stored,) = loaded.trials
    assert read_trial(stored) == TRIAL
    assert trial_spec_text(stored) == "name: tiny\n"
    assert stored.user_attrs["reason"] == TRIAL.reason
    assert stored.values == [0.5, 27_820]


@pytest.mark.parametrize("kind", KINDS)
def test_a_claim_goes_to_its_first_writer_only(kind, storage_url):
    study = _archspec_study(storage_url(kind))
    assert [claim(study, "family:3"), claim(study, "family:3")] == [True, False]
    assert [claim(study, "family:4"), claim(study, "family:3")] == [True, False]
    assert holder(study, "family:3")["pid"] == os.getpid()
    assert holder(study, "never") is None


@pytest.mark.slow  # a second process starts and imports archspec (3-5 s)
@pytest.mark.parametrize("kind", KINDS)
def test_a_claim_is_first_writer_wins_across_processes(kind, storage_url):
    url = storage_url(kind)
    study = _archspec_study(url)
    assert claim(study, "family:3") is True
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        lost, child = pool.submit(_claim_elsewhere, url, "family:3").result()
        won, _ = pool.submit(_claim_elsewhere, url, "worker:0:0").result()
    assert (lost, won) == (False, True) and child != os.getpid()
    assert claim(study, "worker:0:0") is False
    assert holder(study, "family:3")["pid"] == os.getpid()
    assert holder(study, "worker:0:0")["pid"] == child


@pytest.mark.parametrize("kind", KINDS)
def test_load_study_finds_the_study_by_name_and_storage(kind, storage_url):
    url = storage_url(kind)
    _archspec_study(url, "other").ask()
    _archspec_study(url)
    found = load_study("tiny", url)
    assert (found.study_name, len(found.trials), read_study(found)) == ("tiny", 0, STUDY)
    assert len(load_study("other", url).trials) == 1
    with pytest.raises(SearchError, match=r"no study 'missing' in .*; it holds: (other|tiny), "):
        load_study("missing", url)


@pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage", "ignore::optuna.exceptions.ExperimentalWarning"
)
@pytest.mark.parametrize("kind", KINDS)
def test_a_silent_trial_is_failed_and_retried(kind, storage_url, write_def):
    url = storage_url(kind)
    defn = load_search(write_def(heartbeat={"interval": 1, "grace_period": 2, "max_retry": 1}))
    study = open_study(defn, load_dataset(defn.data, defn.seed), storage=url)
    storage = storage_of(study)
    assert storage.get_heartbeat_interval() == 1
    assert isinstance(
        storage.get_heartbeat_stale_trial_callback(), RetryHeartbeatStaleTrialCallback
    )
    trial = study.ask()
    width = trial.suggest_float("width", 0.5, 1.0)
    storage.record_heartbeat(trial_id(trial))  # then its worker dies: no more heartbeats
    start = time.monotonic()
    while study.trials[0].state == TrialState.RUNNING and time.monotonic() - start < 10:
        optuna.storages.fail_stale_trials(study)
        time.sleep(0.2)
    assert time.monotonic() - start >= 2  # not before the grace period
    failed, retry = study.trials
    assert (failed.state, retry.state) == (TrialState.FAIL, TrialState.WAITING)
    assert retry.params == {"width": width}
    assert retry.system_attrs["failed_trial"] == failed.number
