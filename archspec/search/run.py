"""The run loop of a search: open (or resume) the study, train the base as trial 0, run the
trials with a progress bar, then in compound mode the family, then the seeds re-evaluation.
Re-running the same definition resumes the same study."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial

from archspec.errors import SearchError
from archspec.search.bundles import Written, write_bundles
from archspec.search.definition.model import SearchDef
from archspec.search.evaluation import run_evaluation
from archspec.search.family import run_family
from archspec.search.progress import line, lines_wanted
from archspec.search.study.claims import claim, once, running
from archspec.search.study.queries import Tally, best_trial, is_repeat, pareto_trials
from archspec.search.study.records import (
    ROLE_KEY,
    EvaluationRecord,
    FamilyRecord,
    read_evaluation,
    read_family,
    read_trial,
)
from archspec.search.study.runs import WeightStore, claim_folder, study_folder
from archspec.search.study.storage import open_study
from archspec.search.trial import TrialRunner
from archspec.search.workers.loop import MAX_REPEATS, run_trials
from archspec.search.workers.signals import interrupts
from archspec.spec.model import Spec
from archspec.train.data import load_dataset
from archspec.train.loop import cpu_threads


@dataclass
class SearchResult:
    study: optuna.Study
    added: int  # trials run by this call
    seconds: float
    family: FamilyRecord | None = None
    evaluation: EvaluationRecord | None = None
    bundles: list[Written] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why fewer trials than asked for ran


def run_search(
    defn: SearchDef,
    *,
    trials: int | None = None,
    storage: str | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    quiet: bool = False,
    threads: int | None = None,
    finalize: bool = True,
    worker_seed: int | None = None,
    save_top: int = 0,
    save_family: bool = False,
    wait: bool = False,
) -> SearchResult:
    """Run (or resume, or join) the study of `defn` until it holds the base (trial 0) and
    `trials` more finished trials (default: the definition's), counting every worker's; then,
    run by exactly one process, the family phi = 1..K (compound mode), the seeds
    re-evaluation, and the winner written as a bundle (runs/<study>/best/; with `save_top`,
    the best trials as runs/<study>/trial-N/; with `save_family`, the members as
    runs/<study>/phi-K/). SIGTERM and Ctrl-C raise `Interrupted` after the running trial is
    marked failed and queued again. `finalize=False`: trials only; `worker_seed`: this
    worker's sampler seed (default: from its index among the workers)."""
    start = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = defn.seed if seed is None else seed
    dataset = load_dataset(defn.data, seed)
    folder = study_folder(defn.study)
    store = WeightStore(folder / "weights")
    runner = TrialRunner(defn, dataset, seed=seed, quiet=quiet, weights=store)
    study = open_study(
        defn,
        dataset,
        storage=storage,
        seed=seed,
        worker_seed=worker_seed,
        networks=runner.networks,
    )
    claim_folder(folder, study, storage or defn.storage_url)
    # trial 0: the unscaled base, the reference every table compares with; it counts on top
    # of the searched trials, and exactly one of the workers starting a fresh study queues it
    wanted = defn.trials if trials is None else trials
    notes: list[str] = []
    if runner.networks is not None and len(runner.networks) < wanted:
        notes.append(
            f"the FLOPs band holds {len(runner.networks)} distinct networks, fewer than the "
            f"{wanted} trials asked for: each is trained once"
        )
        wanted = len(runner.networks)
    target = wanted + 1
    if len(study.trials) == 0 and claim(study, "base"):
        study.enqueue_trial({}, user_attrs={ROLE_KEY: "base"})
    family = evaluation = None
    bundles: list[Written] = []
    with cpu_threads(threads or defn.training.threads), interrupts():
        with _StudyProgress(study, target, quiet) as progress:
            ran = run_trials(
                study,
                runner,
                target,
                max_retry=defn.heartbeat.max_retry,
                timeout=timeout if timeout is not None else defn.timeout,
                callbacks=[progress.update],
                poll=min(2.0, defn.heartbeat.interval),
            )
        added, held = ran.done, Tally.of(study).finished
        if ran.exhausted and held < target:
            notes.append(
                f"no new network in the last {MAX_REPEATS} proposals: the space holds no more "
                f"than the {held - 1} distinct networks trained, each once; stopping there "
                f"({held - 1} of {target - 1} trials)"
            )
            target = held
        if finalize and held >= target:
            # one process runs the family, the re-evaluation and the bundles for this
            # target; the others read what it stored
            # keyed by what it depends on: a rerun asking for other seeds or top_k redoes it
            # (reusing every stored network's scores that still apply)
            ev = defn.evaluation
            final = f"final:{target}:seeds={ev.seeds}:top_k={ev.top_k}"
            lease = defn.heartbeat.grace_period
            while True:
                with once(study, final, lease=lease) as mine:
                    if mine:
                        family = run_family(study, runner) if defn.mode == "compound" else None
                        evaluation = run_evaluation(study, runner, family)
                        bundles = write_bundles(
                            study,
                            dataset,
                            store,
                            folder,
                            top=save_top,
                            family=save_family,
                            storage=storage,
                            retrain=lambda spec, key: _retrain(runner, spec, key),
                        )
                        break
                    held = running(study, final, lease)
                    if held is None:  # done by another process: its results are stored
                        family, evaluation = read_family(study), read_evaluation(study)
                        break
                    if not wait and not added:
                        # a rerun that trained nothing stops; a worker that trained some of
                        # the trials waits, so every machine of a study exits 0 with its results
                        raise SearchError(_held_message(defn.study, held, lease))
                time.sleep(min(5.0, lease / 3))  # --wait: until it is done, or its claim lapses
    return SearchResult(
        study, added, time.perf_counter() - start, family, evaluation, bundles, notes
    )


def _held_message(study: str, held: dict, lease: float) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(held.get("at", 0)))
    lapses = time.strftime("%H:%M:%S", time.localtime(held.get("at", 0) + lease))
    return (
        f"study {study!r} holds its trials, and its final step (the family and the seeds "
        f"re-evaluation) is running in another process ({held.get('host', '?')}, pid "
        f"{held.get('pid', '?')}, last seen {when}); if that process has stopped, its claim "
        f"lapses at {lapses} and a rerun takes the step over. Run this again then, or add "
        "--wait to wait for it"
    )


def _retrain(runner: TrialRunner, spec: Spec, key: str) -> None:
    """Train `spec` as its trial was trained (the study's recipe and seed) and keep the weights
    under `key`: for a winner another machine trained."""
    model = runner.recipe.model(spec, runner.seed)
    runner.recipe.train(model, spec, runner.seed, desc=f"retrain {key}", keep=key)


class _StudyProgress:
    """One bar for the study: finished trials (every worker's) towards the target, best so far
    (or the Pareto front's size)."""

    def __init__(self, study: optuna.Study, total: int, quiet: bool):
        from tqdm.auto import tqdm

        self.study = study
        self.lines = lines_wanted(quiet)
        self.bar = tqdm(
            total=total,
            initial=min(total, Tally.of(study).finished),
            desc=study.study_name,
            unit="trial",
            disable=True if quiet else None,  # None: no bar when stderr is not a terminal
            dynamic_ncols=True,
        )

    def __enter__(self) -> _StudyProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def update(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.lines and not is_repeat(trial):  # a repeat proposal is not a trial
            finished = min(self.bar.total, Tally.of(study).finished)
            line(f"{trial_line(trial)} ({finished}/{self.bar.total} finished)")
        self.bar.n = min(self.bar.total, Tally.of(study).finished)
        self.bar.refresh()
        if len(study.directions) == 1:
            best = best_trial(study)
            value = best.values[0] if best else math.nan
            self.bar.set_postfix(best=f"{value:.4g}", last=_state(trial))
        else:
            self.bar.set_postfix(pareto=len(pareto_trials(study)), last=_state(trial))


def trial_line(trial: FrozenTrial) -> str:
    """One finished trial in a line: number, what happened, the network, accuracy, time."""
    record = read_trial(trial)
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    if record is None:
        return f"trial {trial.number}: {trial.state.name.lower()}, {seconds:.1f} s"
    what = "base" if record.role == "base" else record.status
    net = ""
    if record.effective is not None:
        eff = record.effective
        net = (
            f" {record.size} px, depth {eff.depth:.2f} width {eff.width:.2f} resolution "
            f"{eff.resolution:.2f}, {eff.flops_ratio:.2f}x FLOPs"
        )
    acc = f", accuracy {record.accuracy:.4f}" if record.accuracy is not None else ""
    why = f" ({record.reason})" if record.status != "trained" and record.reason else ""
    return f"trial {trial.number}: {what}{net}{acc}, {seconds:.1f} s{why}"


def _state(trial: FrozenTrial) -> str:
    record = read_trial(trial)
    if record is None:
        return trial.state.name.lower()
    return "base" if record.role == "base" else record.status
