"""Independent trainings of one study run side by side. The seeds re-evaluation is a list of
(network, seed) jobs that share nothing but the recipe and the data: on CPU, when the study's
trainings use fewer torch threads than there are cores, they go to worker processes with the
same thread count each, so a 2-core machine training with 1 thread does them two at a time.

Each job gives exactly what it gives in the main process: the same data (the parent's
dataset, sent to each worker), the same recipe, the same seed and thread count. Worker
processes are started with `spawn` (no forked torch thread pools): a script that calls the
search from Python needs the usual `if __name__ == "__main__":` guard, as with a DataLoader's
workers. Ctrl-C and SIGTERM reach the main process, which stops the workers."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import torch

from archspec.search.definition.model import SearchDef
from archspec.search.progress import line, lines_wanted
from archspec.search.recipe import Recipe, Scored
from archspec.spec import load_spec
from archspec.train.data import Dataset


@dataclass(frozen=True)
class Job:
    """Train the network `spec` (resolved YAML) from `seed`; `cost` (its FLOPs) orders the
    work, largest first, so that the last job to finish is a short one."""

    spec: str
    seed: int
    desc: str
    cost: int = 0


# Starting a worker (Python, torch, the data) takes a few seconds: below this much expected
# work, one after the other in this process is faster.
MIN_PARALLEL_SECONDS = 30.0


def worker_count(
    recipe: Recipe, jobs: int, processes: int | None, expected_seconds: float | None = None
) -> int:
    """`processes` if given; else, on CPU, as many workers as the cores hold trainings of the
    current thread count, when the jobs are expected to take at least MIN_PARALLEL_SECONDS
    in all (`expected_seconds`; unknown counts as long enough); on an accelerator, 1. Never
    more than the jobs."""
    if processes is None:
        if recipe.device.type != "cpu":
            return 1
        if expected_seconds is not None and expected_seconds < MIN_PARALLEL_SECONDS:
            return 1
        processes = max(1, usable_cpus() // torch.get_num_threads())
    return max(1, min(processes, jobs))


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def score_all(
    recipe: Recipe,
    jobs: list[Job],
    *,
    processes: int | None = None,
    quiet: bool = False,
    seconds_each: float | None = None,
) -> list[Scored]:
    """Validation and test top-1 of each job, in the order given; `seconds_each`: how long
    one is expected to take (e.g. the trials' median), for the choice of worker count."""
    expected = None if seconds_each is None else seconds_each * len(jobs)
    workers = worker_count(recipe, len(jobs), processes, expected)
    lines = lines_wanted(quiet)
    start = time.monotonic()

    def done_line(k: int, job: Job, scored: Scored) -> None:
        if lines:
            line(
                f"re-evaluation {k}/{len(jobs)}: {job.desc}: validation {scored.val:.4f}, "
                f"test {scored.test:.4f} ({time.monotonic() - start:.0f} s)"
            )

    if workers == 1:
        out = []
        for job in jobs:
            out.append(recipe.score(load_spec(job.spec), job.seed, desc=job.desc))
            done_line(len(out), job, out[-1])
        return out
    from tqdm.auto import tqdm

    results: list[Scored | None] = [None] * len(jobs)
    bar = tqdm(
        total=len(jobs),
        desc=f"re-evaluation ({workers} processes)",
        unit="run",
        disable=True if quiet else None,  # None: no bar when stderr is not a terminal
        dynamic_ncols=True,
    )
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(recipe.defn, recipe.dataset, torch.get_num_threads(), os.getpid()),
    )
    try:
        order = sorted(range(len(jobs)), key=lambda i: -jobs[i].cost)
        pending: dict[Future[Scored], int] = {
            pool.submit(_score, jobs[i].spec, jobs[i].seed): i for i in order
        }
        for finished, done in enumerate(as_completed(pending), 1):
            results[pending[done]] = done.result()
            bar.update()
            done_line(finished, jobs[pending[done]], done.result())
    except BaseException:
        _stop(pool)
        raise
    finally:
        bar.close()
    pool.shutdown()
    return [r for r in results if r is not None]


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and stop the workers in the middle of their training,
    including one the executor was still starting; waits until none is alive (30 s at most)."""
    processes = dict(pool._processes or {})  # no public way before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        processes.update(pool._processes or {})
        alive = [p for p in processes.values() if p.is_alive()]
        if not alive:
            return
        for process in alive:
            process.terminate()
        for process in alive:
            process.join(timeout=1)


_recipe: Recipe | None = None  # the worker process's


def _start_worker(defn: SearchDef, dataset: Dataset, threads: int, parent: int) -> None:
    global _recipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    # `parent` comes from the main process: one killed while this worker was still starting
    # is gone already, and getppid() here would name the process that adopted it
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    torch.set_num_threads(threads)
    _recipe = Recipe(defn, dataset, quiet=True)


def _exit_with(parent: int) -> None:
    """A worker whose main process died without stopping it (kill -9) stops within a second
    instead of training on for nobody."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _score(spec: str, seed: int) -> Scored:
    assert _recipe is not None, "not a worker process"
    return _recipe.score(load_spec(spec), seed)
