"""Atomic claims on a study, for work exactly one process may do (a worker's index, the compound
family step): a claim is a study system attribute that only its first writer gets. RDB storages
insert it under the table's unique (study, key) constraint; journal files write it under a file
lock; the in-memory storage serves one process."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.storages import InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from archspec.search.study.optuna_private import (
    backend_of,
    journal_backend,
    journal_file,
    storage_of,
    study_id,
    study_system_attribute_model,
)

CLAIM_PREFIX = "archspec:claim:"


def owner() -> dict[str, Any]:
    """Who holds a claim: host, process id and the time it was taken."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "at": time.time()}


def claim(study: optuna.Study, key: str) -> bool:
    """True for exactly one caller per (study, key), across processes and machines."""
    storage = backend_of(study)
    sid = study_id(study)
    attr, value = CLAIM_PREFIX + key, owner()
    if isinstance(storage, RDBStorage):
        return _insert(storage, sid, attr, value)
    if isinstance(storage, JournalStorage):
        backend = journal_backend(storage)
        if not isinstance(backend, JournalFileBackend):
            raise TypeError(f"claims need a journal file, not {type(backend).__name__}")
        lock = JournalFileOpenLock(journal_file(backend) + ".claim")
        if not lock.acquire():
            raise TimeoutError("journal claim lock")
        try:
            if attr in storage.get_study_system_attrs(sid):
                return False
            storage.set_study_system_attr(sid, attr, value)
            return True
        finally:
            lock.release()
    if isinstance(storage, InMemoryStorage):  # one process: check-and-set is atomic enough
        if attr in storage.get_study_system_attrs(sid):
            return False
        storage.set_study_system_attr(sid, attr, value)
        return True
    raise TypeError(f"no atomic claim on {type(storage).__name__}")


def holder(study: optuna.Study, key: str) -> dict[str, Any] | None:
    """Who took the claim `key` (None when nobody has)."""
    attrs = storage_of(study).get_study_system_attrs(study_id(study))
    return attrs.get(CLAIM_PREFIX + key)


def worker_index(study: optuna.Study, started_at: int) -> int:
    """This worker's index among those that joined the study when it held `started_at`
    trials: 0 for the first (or only) one, so a single process seeds as it always did."""
    index = 0
    while not claim(study, f"worker:{started_at}:{index}"):
        index += 1
    return index


@contextlib.contextmanager
def once(study: optuna.Study, key: str, lease: float = 60.0) -> Iterator[bool]:
    """Yields True in exactly one process for `key`: that process does the work, refreshing
    its claim every lease/3 seconds. A holder that fails (an exception, Ctrl-C) releases the
    claim, and one silent for `lease` seconds (killed) has lost it: a later run takes it over.
    Done work keeps its claim."""
    generation = 0
    while (taken := holder(study, f"{key}:{generation}")) is not None and _lapsed(taken, lease):
        generation += 1
    name = CLAIM_PREFIX + f"{key}:{generation}"
    if not claim(study, name[len(CLAIM_PREFIX) :]):
        yield False
        return
    stop = threading.Event()

    def mark(**state: bool) -> None:
        storage_of(study).set_study_system_attr(study_id(study), name, {**owner(), **state})

    def refresh() -> None:
        while not stop.wait(lease / 3):
            mark()

    refresher = threading.Thread(target=refresh, name=f"claim {key}", daemon=True)
    refresher.start()
    try:
        yield True
    except BaseException:
        stop.set()
        refresher.join()
        mark(released=True)
        raise
    stop.set()
    refresher.join()
    mark(done=True)


def running(study: optuna.Study, key: str, lease: float = 60.0) -> dict[str, Any] | None:
    """Who is doing `once(study, key)`'s work right now (host, pid, `at`: its last refresh),
    or None when nobody is (not started, done, or its holder lapsed)."""
    generation, taken = 0, None
    while (found := holder(study, f"{key}:{generation}")) is not None:
        taken, generation = found, generation + 1
    if taken is None or taken.get("done") or _lapsed(taken, lease):
        return None
    return taken


def _lapsed(taken: dict[str, Any], lease: float) -> bool:
    if taken.get("done"):
        return False
    return bool(taken.get("released")) or time.time() - taken["at"] > lease


def _insert(storage: RDBStorage, study_id: int, attr: str, value: dict[str, Any]) -> bool:
    import sqlalchemy.exc

    session = storage.scoped_session()
    try:
        session.add(
            study_system_attribute_model()(
                study_id=study_id, key=attr, value_json=json.dumps(value)
            )
        )
        session.commit()
        return True
    except sqlalchemy.exc.IntegrityError:
        session.rollback()
        return False
    finally:
        session.close()
