"""One worker's trial loop: run trials until the study holds its target number of finished
trials, counting every worker's; wait while the missing ones run elsewhere (retrying any whose
worker died); SIGTERM and Ctrl-C fail the running trial, queue it again and stop the worker."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts towards the target
# A trial holds a place in the target while it is finished, running or queued.
HOLDING = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)
WORKER = f"{socket.gethostname()}:{os.getpid()}"  # recorded on each trial it runs
SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}

Objective = Callable[[optuna.Trial], Any]
Callback = Callable[[optuna.Study, FrozenTrial], None]


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


class Surplus(Exception):
    """A trial started after the other workers had already filled the target."""


@dataclass(frozen=True)
class Tally:
    """The study's trials by what they mean for the target."""

    finished: int  # COMPLETE or PRUNED
    running: int
    waiting: int  # queued: retries of failed trials, enqueued trials

    @classmethod
    def of(cls, study: optuna.Study) -> Tally:
        states = [t.state for t in study.get_trials(deepcopy=False)]
        return cls(
            sum(s in FINISHED for s in states),
            states.count(TrialState.RUNNING),
            states.count(TrialState.WAITING),
        )


def run_trials(
    study: optuna.Study,
    objective: Objective,
    target: int,
    *,
    max_retry: int | None = None,
    timeout: float | None = None,
    callbacks: Sequence[Callback] = (),
    poll: float = 2.0,
) -> int:
    """Run trials until `study` holds `target` finished trials (all workers together); returns
    how many this worker finished. A trial that starts when the others already fill the target
    fails as surplus before it samples anything, so the count lands exactly on the target."""
    start = time.monotonic()
    guard = _Guard(study, objective, target)
    done = 0
    with _quiet_failures(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        while True:
            tally = Tally.of(study)
            if tally.finished >= target:
                break
            if timeout is not None and time.monotonic() - start >= timeout:
                break
            if tally.finished + tally.running >= target and tally.waiting == 0:
                # every missing trial runs somewhere: wait for them, or for one to go stale
                optuna.storages.fail_stale_trials(study)
                time.sleep(poll)
                continue
            guard.trial_id, guard.surplus, guard.lost = None, False, False
            try:
                study.optimize(
                    guard,
                    n_trials=1,
                    catch=(Surplus,),
                    callbacks=list(callbacks),
                    gc_after_trial=False,
                )
            except KeyboardInterrupt as exc:
                signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
                raise Interrupted(signum, _requeue(study, guard.trial_id, max_retry)) from None
            except optuna.exceptions.UpdateFinishedTrialError:
                # another worker found this trial's heartbeat stale, failed it and queued a
                # retry: the result is dropped, the retry counts
                continue
            except Exception:
                # the same, noticed mid-trial (a report or attribute write refused): Optuna
                # then cannot tell the trial FAIL a second time and raises; nothing is lost
                if guard.lost:
                    continue
                raise
            if not guard.surplus:
                done += 1
    return done


class _Guard:
    """The objective, behind the surplus check; remembers the trial it runs."""

    def __init__(self, study: optuna.Study, objective: Objective, target: int):
        self.study, self.objective, self.target = study, objective, target
        self.trial_id: int | None = None
        self.surplus = False
        self.lost = False  # another worker failed this trial as stale while it ran

    def __call__(self, trial: optuna.Trial) -> Any:
        self.trial_id = trial._trial_id
        # Trial numbers are handed out in order: the places before this one decide.
        ahead = sum(
            t.number < trial.number for t in self.study.get_trials(deepcopy=False, states=HOLDING)
        )
        self.surplus = ahead >= self.target
        if self.surplus:
            trial.set_user_attr("fail_reason", f"surplus: {self.target} trials already held")
            raise Surplus(f"the study already holds its {self.target} trials")
        if trial.user_attrs.get("fail_reason"):  # a retry inherits its failed trial's attrs
            trial.set_user_attr("fail_reason", None)
        trial.set_user_attr("worker", WORKER)
        try:
            return self.objective(trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            self.lost = True
            raise
        except KeyboardInterrupt as exc:
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            trial.set_user_attr("fail_reason", f"interrupted ({SIGNAL_NAMES[signum]})")
            raise


def _requeue(study: optuna.Study, trial_id: int | None, max_retry: int | None) -> int | None:
    """The interrupted trial failed (Optuna marks it FAIL) and queued again with the same
    parameters, as the heartbeat would have done after the grace period."""
    if trial_id is None:
        return None
    trial = study._storage.get_trial(trial_id)
    if trial.state == TrialState.RUNNING:  # interrupted before Optuna told it
        study.tell(trial.number, state=TrialState.FAIL)
        trial = study._storage.get_trial(trial_id)
    if trial.state != TrialState.FAIL:  # it finished before the signal
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry)(study, trial)
    return trial.number


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


class _FailureFilter(logging.Filter):
    """Drops Optuna's traceback for trials failed by an interrupt or as surplus (reported by
    archspec in one line), or failed as stale by another worker while they ran (retried)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(
            exc, (KeyboardInterrupt, Surplus, optuna.exceptions.UpdateFinishedTrialError)
        ):
            return False
        return not record.getMessage().endswith("failed with value None.")


@contextlib.contextmanager
def _quiet_failures() -> Iterator[None]:
    logger = logging.getLogger("optuna.study._optimize")
    flt = _FailureFilter()
    logger.addFilter(flt)
    try:
        yield
    finally:
        logger.removeFilter(flt)


def unfinished(study: optuna.Study) -> dict[int, str]:
    """Trial number -> why it never finished, for every trial that is not COMPLETE or PRUNED
    (what `report` and `export` say about it)."""
    trials = study.get_trials(deepcopy=False)
    retried_as = {
        t.system_attrs["retry_history"][-1]: t.number
        for t in trials
        if t.system_attrs.get("retry_history")
    }
    notes = {}
    for t in trials:
        if t.state in FINISHED:
            continue
        if t.state == TrialState.RUNNING:
            note = (
                "running (if its worker died, it is failed and retried once its heartbeat is stale)"
            )
        elif t.state == TrialState.WAITING:
            note = "queued: the next worker runs it"
        else:
            reason = t.user_attrs.get("fail_reason")
            if not reason:
                reason = "its worker died" if t.number in retried_as else "failed"
            note = f"failed: {reason}"
            if t.number in retried_as:
                note += f"; retried as trial {retried_as[t.number]}"
        notes[t.number] = note
    return notes
