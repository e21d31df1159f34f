"""Signals while a worker trains: SIGTERM and Ctrl-C become `Interrupted` in the main thread,
never in the middle of a storage call."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT: the running trial was failed and queued again."""

    def __init__(self, signum: int, trial: int | None = None):
        super().__init__(signum)
        self.signum, self.trial = signum, trial

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM

    def __str__(self) -> str:
        name = SIGNAL_NAMES.get(self.signum, f"signal {self.signum}")
        running = "" if self.trial is None else f" trial {self.trial} failed and queued again;"
        return f"{name}:{running} finished trials are stored; run the same command to resume"


@contextlib.contextmanager
def interrupts() -> Iterator[None]:
    """SIGTERM and SIGINT raise `Interrupted` in the main thread (Optuna then fails the running
    trial). Never in the middle of a storage call: a journal file's lock or a database
    transaction cut in half would break the storage for everyone, so a signal that arrives
    there is held back and raised, polled by SIGALRM, as soon as the call has returned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGALRM:
            if not pending:
                return
            signum = pending[0]
        if _in_storage(frame):
            pending[:] = [signum]
            signal.setitimer(signal.ITIMER_REAL, 0.02)
            return
        pending.clear()
        raise Interrupted(signum)

    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)
    before = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, previous in before.items():
            signal.signal(signum, previous)


STORAGE_CODE = tuple(
    f"{os.sep}{package}{os.sep}" for package in ("storages", "sqlalchemy", "psycopg2", "sqlite3")
)


def _in_storage(frame: FrameType | None) -> bool:
    """Whether the interrupted main thread is inside Optuna's storage or a database driver."""
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in STORAGE_CODE):
            return True
        frame = frame.f_back
    return False
