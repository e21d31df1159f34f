"""Optuna storages that survive a dead worker: a storage string becomes an RDB storage (an
SQLAlchemy URL: SQLite, PostgreSQL, MySQL) or a JournalStorage file (anything else: a path), both
with a heartbeat, so a trial whose worker died is failed once its heartbeat is stale and retried
with the same parameters by any worker (Optuna's `RetryHeartbeatStaleTrialCallback`)."""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState

from archspec.errors import SearchError
from archspec.search.study.optuna_private import base_heartbeat, trial_id
from archspec.text import shown

BaseHeartbeat = base_heartbeat()  # Optuna's heartbeat interface (RDB's too)

if TYPE_CHECKING:
    from archspec.search.definition.model import Heartbeat

HEARTBEAT_ATTR = "archspec:heartbeat"  # journal trials: wall time of the last heartbeat
T = TypeVar("T")


def is_url(storage: str) -> bool:
    """An SQLAlchemy URL (RDB storage); anything else names a JournalStorage file."""
    return "://" in storage


def open_storage(storage: str, heartbeat: Heartbeat | None = None) -> BaseStorage:
    """The Optuna storage for `storage`; with `heartbeat`, running trials record a heartbeat and
    stale ones are failed and retried (up to `heartbeat.max_retry` times) by any worker."""
    with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna since 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return _open(storage, heartbeat)
        except ImportError as exc:  # Optuna's "Failed to import DB access module"
            raise SearchError(_missing_driver(storage, exc)) from exc


def _missing_driver(storage: str, exc: ImportError) -> str:
    """One line: which database driver the URL asks for and how to get it."""
    scheme = storage.partition("://")[0]
    cause = exc.__cause__ if isinstance(exc.__cause__, ImportError) else exc
    missing = getattr(cause, "name", None) or str(cause)
    if scheme == "postgresql":  # SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3
        return (
            f"storage {scheme}://...: its driver, {missing}, is not installed; write "
            "postgresql+psycopg2://USER:PASSWORD@HOST/DB (psycopg2-binary, installed by "
            "pip install 'archspec[postgres]') or pip install 'psycopg[binary]'"
        )
    return (
        f"storage {scheme}://...: its database driver, {missing}, is not installed "
        "(pip install it, or name an installed one: DIALECT+DRIVER://...)"
    )


def _open(storage: str, heartbeat: Heartbeat | None) -> BaseStorage:
    retry = None if heartbeat is None else RetryHeartbeatStaleTrialCallback(heartbeat.max_retry)
    if not is_url(storage):
        path = Path(storage)
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_journal(path)
        backend = JournalFileBackend(str(path))
        try:  # the constructor replays the whole journal
            if heartbeat is None:
                return JournalStorage(backend)
            return HeartbeatJournalStorage(
                backend, heartbeat.interval, heartbeat.grace_period, retry
            )
        except Exception as exc:
            raise damaged_journal(path, exc) from exc
    if storage.startswith("sqlite:///"):
        path = Path(storage[len("sqlite:///") :])
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)
        # Writers queue on SQLite's file lock: wait for it rather than fail after 5 s.
        engine_kwargs = {"connect_args": {"timeout": 120}}
    else:
        engine_kwargs = {"pool_pre_ping": True}  # a server may drop idle connections
    beat = {}
    if heartbeat is not None:
        beat = {
            "heartbeat_interval": heartbeat.interval,
            "grace_period": heartbeat.grace_period,
            "heartbeat_stale_trial_callback": retry,
        }
    return retry_schema_race(lambda: RDBStorage(storage, engine_kwargs=engine_kwargs, **beat))


def repair_journal(path: Path) -> Path | None:
    """A journal file whose last record was cut short (its writer was killed mid-append, a
    disk filled up) ends without a newline: Optuna skips that record when reading, but the
    next append would join it to a new record on one line and leave the whole study
    unreadable. Drop the partial record, keeping the file as it was in PATH.torn-N, and say
    so in one line. Done under the journal's own lock, so no live append is cut. Returns the
    backup, or None when the file was whole."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    lock = JournalFileSymlinkLock(str(path))
    if not lock.acquire():
        raise SearchError(f"{shown(path)}: the journal's lock could not be taken")
    try:
        with open(path, "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return None
            keep = _last_newline(handle, size) + 1
            backup = _free_name(path)
            handle.seek(0)
            with open(backup, "wb") as copy:
                shutil.copyfileobj(handle, copy)
                copy.flush()
                os.fsync(copy.fileno())
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        lock.release()
    logging.getLogger("archspec").warning(
        "%s: the last record was cut short (%d bytes) and was dropped; the file as it was is "
        "kept in %s",
        shown(path),
        size - keep,
        shown(backup),
    )
    return backup


def _last_newline(handle: BinaryIO, size: int) -> int:
    """The offset of the file's last newline, or -1 (read backwards in blocks)."""
    end = size
    while end > 0:
        start = max(0, end - (1 << 16))
        handle.seek(start)
        found = handle.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found
        end = start
    return -1


def _free_name(path: Path) -> Path:
    for n in range(1, 10_000):
        backup = path.with_name(f"{path.name}.torn-{n}")
        if not backup.exists():
            return backup
    raise SearchError(f"{shown(path)}: too many torn-journal backups beside it")


# what a database or journal error means for the user, by the words its message holds
_STORAGE_FAULTS = (
    (("readonly", "read-only", "permission denied"), "read-only: archspec cannot write there"),
    (("database is locked", "lock timeout"), "locked by another process; retry when it is done"),
    (
        ("file is not a database", "malformed", "invalid log format", "jsondecodeerror",
         "unterminated string", "extra data"),
        "damaged: it is not a readable study store",
    ),
    (("unable to open database", "no such table"), "cannot be opened as a study store"),
)  # fmt: skip


def damaged_journal(path: str | Path, exc: BaseException) -> SearchError:
    """A journal Optuna could not replay: a record that is not valid JSON or UTF-8, or a valid
    record that does not fit the study (Optuna's KeyError, ValueError...)."""
    why = shown(str(exc).strip().splitlines()[0] if str(exc).strip() else "", 120)
    return SearchError(
        f"storage {shown(path)}: damaged: it is not a readable study journal "
        f"({type(exc).__name__}: {why}); the file is left as it is"
    )


def storage_fault(exc: BaseException, url: str) -> SearchError | None:
    """One line for a storage that cannot be used (read-only, locked, damaged), from any
    exception in the chain (Optuna wraps driver errors in a generic commit error); None when
    the error is not one of these."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    text = " ".join(f"{type(e).__name__} {e}" for e in seen).lower()
    for words, meaning in _STORAGE_FAULTS:
        if any(word in text for word in words):
            first = shown(str(seen[-1]).strip().splitlines()[0] if str(seen[-1]).strip() else "")
            return SearchError(f"storage {shown(url)}: {meaning} ({first})")
    return None


def retry_schema_race(make: Callable[[], T], attempts: int = 8) -> T:
    """`make()`, retried when workers starting together on a fresh database race to create
    Optuna's tables (`UNIQUE constraint failed: alembic_version`, or PostgreSQL's duplicate
    type/table errors): the loser retries against the finished schema."""
    import sqlalchemy.exc

    races = (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)
    for attempt in range(attempts):
        try:
            return make()
        except sqlalchemy.exc.DBAPIError as exc:
            # SQLite also says "database is locked" or "table ... already exists"
            race = isinstance(exc, races) or any(
                text in str(exc) for text in ("locked", "already exists")
            )
            if not race or attempt == attempts - 1:
                raise
        time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))
    raise AssertionError("unreachable")


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """JournalStorage with the heartbeat RDBStorage has: the heartbeat is a trial system
    attribute (wall time), appended to the journal every `interval` seconds while the trial
    runs. A journal file serves the workers of one machine, so their clocks agree."""

    def __init__(
        self,
        backend: JournalFileBackend,
        interval: int,
        grace_period: int,
        callback: Callable[[optuna.Study, FrozenTrial], None] | None,
    ) -> None:
        super().__init__(backend)
        self.heartbeat_interval, self.grace_period, self.callback = interval, grace_period, callback

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
        except UpdateFinishedTrialError:  # another worker already failed it as stale
            pass

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        return [
            trial_id(t)
            for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            if now - t.system_attrs.get(HEARTBEAT_ATTR, now) > self.grace_period
        ]

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.callback
