"""One worker's trial loop: run trials until the study holds its target number of finished
trials, counting every worker's; wait while the missing ones run elsewhere (retrying any whose
worker died); SIGTERM and Ctrl-C fail the running trial, queue it again and stop the worker."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from archspec.search.study.optuna_private import OPTIMIZE_LOGGER, storage_of
from archspec.search.study.optuna_private import trial_id as trial_id_of
from archspec.search.study.queries import HOLDING, Tally, is_repeat
from archspec.search.study.records import REPEAT_KEY
from archspec.search.workers.signals import SIGNAL_NAMES, Interrupted

WORKER = f"{socket.gethostname()}:{os.getpid()}"  # recorded on each trial it runs

Objective = Callable[[optuna.Trial], Any]
Callback = Callable[[optuna.Study, FrozenTrial], None]


# Proposals in a row that rebuild an earlier network before the space counts as exhausted
# (each costs a sampler call and a hash, no training).
MAX_REPEATS = 60


@dataclass(frozen=True)
class Ran:
    done: int  # trials this worker finished
    exhausted: bool = False  # stopped: the sampler kept proposing networks already trained


class Surplus(Exception):
    """A trial started after the other workers had already filled the target."""


def run_trials(
    study: optuna.Study,
    objective: Objective,
    target: int,
    *,
    max_retry: int | None = None,
    timeout: float | None = None,
    callbacks: Sequence[Callback] = (),
    poll: float = 2.0,
    max_repeats: int = MAX_REPEATS,
) -> Ran:
    """Run trials until `study` holds `target` finished trials (all workers together); returns
    how many this worker finished. A trial that starts when the others already fill the target
    fails as surplus before it samples anything, so the count lands exactly on the target.
    A proposal that rebuilds an earlier network counts for nothing and the sampler is asked
    again; after `max_repeats` such proposals in a row the space is taken as exhausted."""
    start = time.monotonic()
    guard = _Guard(study, objective, target)
    done = repeats = 0
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
            guard.trial_id, guard.surplus, guard.lost, guard.repeat = None, False, False, False
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
            if guard.repeat:
                repeats += 1
                grid = study.sampler
                if repeats >= max_repeats or (
                    isinstance(grid, optuna.samplers.GridSampler) and grid.is_exhausted(study)
                ):
                    return Ran(done, exhausted=True)
            elif not guard.surplus:
                done += 1
                repeats = 0
    return Ran(done)


class _Guard:
    """The objective, behind the surplus check; remembers the trial it runs."""

    def __init__(self, study: optuna.Study, objective: Objective, target: int):
        self.study, self.objective, self.target = study, objective, target
        self.trial_id: int | None = None
        self.surplus = False
        self.lost = False  # another worker failed this trial as stale while it ran
        self.repeat = False  # the proposal rebuilt an earlier network

    def __call__(self, trial: optuna.Trial) -> Any:
        self.trial_id = trial_id_of(trial)
        # Trial numbers are handed out in order: the places before this one decide.
        ahead = sum(
            t.number < trial.number and not is_repeat(t)
            for t in self.study.get_trials(deepcopy=False, states=HOLDING)
        )
        self.surplus = ahead >= self.target
        if self.surplus:
            trial.set_user_attr("fail_reason", f"surplus: {self.target} trials already held")
            raise Surplus(f"the study already holds its {self.target} trials")
        if trial.user_attrs.get("fail_reason"):  # a retry inherits its failed trial's attrs
            trial.set_user_attr("fail_reason", None)
        trial.set_user_attr("worker", WORKER)
        self.repeat = False
        try:
            return self.objective(trial)
        except optuna.TrialPruned:
            self.repeat = REPEAT_KEY in trial.user_attrs
            raise
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
    trial = storage_of(study).get_trial(trial_id)
    if trial.state == TrialState.RUNNING:  # interrupted before Optuna told it
        study.tell(trial.number, state=TrialState.FAIL)
        trial = storage_of(study).get_trial(trial_id)
    if trial.state != TrialState.FAIL:  # it finished before the signal
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry)(study, trial)
    return trial.number


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
    logger = logging.getLogger(OPTIMIZE_LOGGER)
    flt = _FailureFilter()
    logger.addFilter(flt)
    try:
        yield
    finally:
        logger.removeFilter(flt)
