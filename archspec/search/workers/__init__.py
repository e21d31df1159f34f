"""Processes that run a search: N worker processes on one study (`launch`), one worker's trial
loop (`loop`), signals while training (`signals`) and trainings side by side for the seeds
re-evaluation (`pool`)."""

from archspec.search.workers.launch import launch_workers, plan_workers, run_workers
from archspec.search.workers.loop import run_trials
from archspec.search.workers.signals import Interrupted, interrupts

__all__ = [
    "Interrupted",
    "interrupts",
    "launch_workers",
    "plan_workers",
    "run_trials",
    "run_workers",
]
