"""Several worker processes on one study (`archspec search DEF --workers N`): N copies of the
command in worker mode, the CPU threads split between them, spread over the GPUs (each pinned with
CUDA_VISIBLE_DEVICES), one progress bar for all of them read from the storage, and SIGTERM /
Ctrl-C passed on to them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna

from archspec.errors import SearchError
from archspec.search.study.heartbeat import open_storage
from archspec.search.study.queries import Tally, best_trial

if TYPE_CHECKING:
    from archspec.search.definition.model import SearchDef


@dataclass(frozen=True)
class WorkerPlan:
    """Where one worker process runs."""

    index: int
    threads: int  # torch CPU threads
    gpu: str | None  # its CUDA_VISIBLE_DEVICES (None: left as it is)

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        env = {**base, "OMP_NUM_THREADS": str(self.threads)}
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
        return env


def plan_workers(
    count: int, *, cpus: int, gpus: Sequence[str] = (), threads: int | None = None
) -> list[WorkerPlan]:
    """`count` workers: `threads` each (default: the CPUs split evenly, at least one), and the
    GPUs dealt round-robin (several workers may share one GPU when there are fewer GPUs)."""
    if count < 1:
        raise SearchError(f"--workers must be >= 1 (got {count})")
    per_worker = threads or max(1, cpus // count)
    return [WorkerPlan(i, per_worker, gpus[i % len(gpus)] if gpus else None) for i in range(count)]


def visible_gpus(requested: str | None, env: Mapping[str, str], cuda_count: int) -> list[str]:
    """The GPUs to spread workers over: `--gpus 0,1,...` as given, else the ones this process
    sees (CUDA_VISIBLE_DEVICES's entries, or 0..cuda_count-1); none without CUDA."""
    text = requested if requested is not None else env.get("CUDA_VISIBLE_DEVICES")
    if text is not None:
        gpus = [g.strip() for g in text.split(",") if g.strip()]
        if requested is not None and not gpus:
            raise SearchError(f"--gpus expects a list like 0,1 (got {requested!r})")
        return gpus
    return [str(i) for i in range(cuda_count)]


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def worker_command(
    definition: str, plan: WorkerPlan, sampler_seed: int, options: Sequence[str]
) -> list[str]:
    """The command line of one worker: the same search, in worker mode."""
    return [
        sys.executable,
        "-m",
        "archspec",
        "search",
        definition,
        "--as-worker",
        "--threads",
        str(plan.threads),
        "--worker-seed",
        str(sampler_seed),
        *options,
    ]


def run_workers(
    definition: str,
    plans: Sequence[WorkerPlan],
    sampler_seeds: Sequence[int],
    options: Sequence[str],
    progress: Progress,
) -> list[int]:
    """Start the workers, show their combined progress until all have exited, and return
    their exit codes. SIGTERM and Ctrl-C are passed on once; each worker then fails its
    running trial, queues it again and exits."""
    procs = [
        subprocess.Popen(
            worker_command(definition, plan, seed, options),
            env=plan.env(os.environ),
            start_new_session=True,  # the terminal's Ctrl-C reaches them through us, once
        )
        for plan, seed in zip(plans, sampler_seeds, strict=True)
    ]
    with _forward_signals(procs):
        while any(p.poll() is None for p in procs):
            progress.update()
            time.sleep(1.0)
    progress.update()
    progress.close()
    return [p.returncode for p in procs]


def finished(progress: Progress) -> int:
    """Trials the workers finished (every worker's, this launch's)."""
    return progress.held() - progress.before


@contextlib.contextmanager
def _forward_signals(procs: Sequence[subprocess.Popen]) -> Iterator[None]:
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        if not received:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signum)
        received.append(signum)

    before = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, previous in before.items():
            signal.signal(signum, previous)
    if received:
        from archspec.search.workers.signals import Interrupted

        raise Interrupted(received[0])


class Progress:
    """One bar for all workers, polled from the storage: finished trials towards the target,
    how many run now, and the best value so far."""

    def __init__(self, study_name: str, storage: str, target: int, quiet: bool):
        from tqdm.auto import tqdm

        self.study_name, self.storage = study_name, storage
        self.bar = tqdm(total=target, desc=study_name, unit="trial", disable=quiet)
        self.study = self._load()
        self.before = Tally.of(self.study).finished if self.study else 0

    def _load(self) -> optuna.Study | None:
        try:
            return optuna.load_study(study_name=self.study_name, storage=open_storage(self.storage))
        except KeyError:  # the workers have not created it yet
            return None

    def held(self) -> int:
        """Finished trials the study holds now (every worker's)."""
        if self.study is None:
            self.study = self._load()
        return Tally.of(self.study).finished if self.study else 0

    @property
    def started_at(self) -> int:
        """Trials in the study before the workers started."""
        return len(self.study.trials) if self.study else 0

    def update(self) -> None:
        if self.study is None:
            self.study = self._load()
        if self.study is None or self.bar.disable:
            return
        tally = Tally.of(self.study)
        self.bar.n = min(self.bar.total, tally.finished)
        postfix = {"running": tally.running}
        if len(self.study.directions) == 1 and (best := best_trial(self.study)):
            postfix["best"] = f"{best.values[0]:.4g}"
        self.bar.set_postfix(postfix)

    def close(self) -> None:
        self.bar.close()


def launch_workers(
    definition: str,
    defn: SearchDef,
    count: int,
    *,
    gpus: str | None = None,
    trials: int | None = None,
    storage: str | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    quiet: bool = False,
) -> tuple[int, str | None]:
    """`count` worker processes (`archspec search DEFINITION --as-worker`) until the study
    holds its trials; the caller then runs the family step and the re-evaluation with
    `run_search`. Returns the trials they finished, and a note when a worker failed but the
    others finished its trials; raises SearchError when the study is short of its target."""
    from archspec.search.study.storage import sampler_seed

    on_gpu = defn.training.device in ("auto", "cuda")
    plans = plan_workers(
        count,
        cpus=os.cpu_count() or 1,
        gpus=visible_gpus(gpus, os.environ, cuda_device_count()) if on_gpu else [],
        threads=defn.training.threads,
    )
    options = [
        *("--storage", storage or defn.storage_url),
        *(("--trials", str(trials)) if trials is not None else ()),
        *(("--seed", str(seed)) if seed is not None else ()),
        *(("--timeout", str(timeout)) if timeout is not None else ()),
        *defn.overrides,  # the workers run the same definition, overrides included
    ]
    target = (defn.trials if trials is None else trials) + 1  # and the base, trial 0
    progress = Progress(defn.study, storage or defn.storage_url, target, quiet)
    seeds = [
        sampler_seed(defn.seed if seed is None else seed, progress.started_at, plan.index)
        for plan in plans
    ]
    codes = run_workers(definition, plans, seeds, options, progress)
    failed = [(i, code) for i, code in enumerate(codes) if code != 0]
    listed = ", ".join(f"worker {i} exited with {code}" for i, code in failed)
    added = finished(progress)
    if failed and progress.held() < target:
        raise SearchError(f"{listed}; finished trials are stored: run the same command to resume")
    note = f"{listed}; the other workers finished its trials" if failed else None
    return added, note  # when failed, the others retried its trial and reached the target
