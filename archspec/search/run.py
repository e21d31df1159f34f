"""The run loop of a search: open (or resume) the study, train the base as trial 0, run the
trials with a progress bar, then in compound mode the family, then the seeds re-evaluation.
Re-running the same definition resumes the same study."""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import optuna
import torch
from optuna.trial import FrozenTrial

from archspec.search.bundles import WeightStore, Written, study_folder, write_bundles
from archspec.search.data import load_dataset
from archspec.search.definition import SearchDef
from archspec.search.evaluation import run_evaluation
from archspec.search.family import run_family
from archspec.search.record import ROLE_KEY, EvaluationRecord, FamilyRecord, read_trial
from archspec.search.results import best_trial, pareto_trials
from archspec.search.storage import open_study
from archspec.search.trial import TrialRunner


@dataclass
class SearchResult:
    study: optuna.Study
    added: int  # trials run by this call
    seconds: float
    family: FamilyRecord | None = None
    evaluation: EvaluationRecord | None = None
    bundles: list[Written] = field(default_factory=list)


def run_search(
    defn: SearchDef,
    *,
    trials: int | None = None,
    storage: str | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    quiet: bool = False,
    save_top: int = 0,
    save_family: bool = False,
) -> SearchResult:
    """Run (or resume) the study of `defn`: `trials` more trials (default: the definition's),
    then, in compound mode, the family phi = 1..K, then the seeds re-evaluation; last, the
    winner is written as a bundle (runs/<study>/best/; with `save_top`, the best trials as
    runs/<study>/trial-N/; with `save_family`, the members as runs/<study>/phi-K/)."""
    start = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = defn.seed if seed is None else seed
    dataset = load_dataset(defn.data, seed)
    study = open_study(defn, dataset, storage=storage, seed=seed)
    folder = study_folder(defn.study)
    store = WeightStore(folder / "weights")
    runner = TrialRunner(defn, dataset, seed=seed, quiet=quiet, weights=store)
    n_trials = defn.trials if trials is None else trials
    before = len(study.trials)
    if before == 0:  # trial 0: the unscaled base, the reference every table compares with
        study.enqueue_trial({}, user_attrs={ROLE_KEY: "base"})
        n_trials += 1
    with _threads(defn.training.threads):
        with _StudyProgress(study, n_trials, quiet) as progress, warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.optimize(
                runner,
                n_trials=n_trials,
                timeout=timeout if timeout is not None else defn.timeout,
                callbacks=[progress.update],
                gc_after_trial=False,
            )
        family = run_family(study, runner) if defn.mode == "compound" else None
        evaluation = run_evaluation(study, runner, family)
        bundles = write_bundles(
            study, dataset, store, folder, top=save_top, family=save_family, storage=storage
        )
    seconds = time.perf_counter() - start
    return SearchResult(study, len(study.trials) - before, seconds, family, evaluation, bundles)


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """torch's CPU threads set to `count` for the search, restored afterwards."""
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _StudyProgress:
    """One bar for the study: trials done, best so far (or the Pareto front's size)."""

    def __init__(self, study: optuna.Study, total: int, quiet: bool):
        from tqdm.auto import tqdm

        self.study = study
        self.bar = tqdm(
            total=total, desc=study.study_name, unit="trial", disable=quiet, dynamic_ncols=True
        )

    def __enter__(self) -> _StudyProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def update(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.bar.update(1)
        if len(study.directions) == 1:
            best = best_trial(study)
            value = best.values[0] if best else math.nan
            self.bar.set_postfix(best=f"{value:.4g}", last=_state(trial))
        else:
            self.bar.set_postfix(pareto=len(pareto_trials(study)), last=_state(trial))


def _state(trial: FrozenTrial) -> str:
    record = read_trial(trial)
    if record is None:
        return trial.state.name.lower()
    return "base" if record.role == "base" else record.status
