"""The Optuna study of a search definition: storage, sampler, pruner, the trial objective and
compound scaling's step 2 (the family).

A trial proposes a Candidate, scales the base spec, and checks params/FLOPs (and in compound
mode the FLOPs ratio) from the analysis before anything is built; a latency limit is checked
after building, before training. An infeasible candidate is never trained: it completes with
penalty values and its constraint values (`trial.set_constraint`), so TPE and NSGA-II learn
where the feasible region is. Re-running the same definition resumes the same study.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from archspec.analysis import analyze
from archspec.compile import build
from archspec.errors import ArchspecError, Location, SearchError
from archspec.search import objectives
from archspec.search.data import Dataset, load_dataset
from archspec.search.definition import SearchDef, default_storage
from archspec.search.latency import measure_latency
from archspec.search.objectives import Metrics
from archspec.search.space import Candidate, grid_space, suggest
from archspec.search.train import pick_device, seed_everything, train
from archspec.spec.dump import dump_spec
from archspec.spec.model import Spec

STUDY_ATTR = "archspec"  # study user attribute: all that report and export need
# Sections whose change makes new trials incomparable with the stored ones.
FINGERPRINT = (
    "mode",
    "space",
    "compound",
    "data",
    "training",
    "objectives",
    "reward",
    "constraints",
    "latency",
)


@dataclass
class SearchResult:
    study: optuna.Study
    added: int  # trials run by this call
    seconds: float
    family: list[dict[str, Any]] | None = None


def run_search(
    defn: SearchDef,
    *,
    trials: int | None = None,
    storage: str | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    quiet: bool = False,
) -> SearchResult:
    """Run (or resume) the study of `defn`: `trials` more trials (default: the definition's),
    then, in compound mode, the family phi = 1..K. Returns the study."""
    start = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = defn.seed if seed is None else seed
    dataset = load_dataset(defn.data, seed)
    study = open_study(defn, dataset, storage=storage, seed=seed)
    runner = TrialRunner(defn, dataset, seed=seed, quiet=quiet)
    n_trials = defn.trials if trials is None else trials
    before = len(study.trials)
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
    return SearchResult(study, len(study.trials) - before, time.perf_counter() - start, family)


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


# --- study, storage, sampler, pruner ------------------------------------------------------


def storage_url(url: str) -> str:
    """The URL, with the folder of an SQLite file created."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)
    return url


def open_study(
    defn: SearchDef, dataset: Dataset, *, storage: str | None = None, seed: int | None = None
) -> optuna.Study:
    """Create the study, or load it to add trials when it exists (refusing a changed setup)."""
    seed = defn.seed if seed is None else seed
    url = storage_url(storage or defn.storage_url)
    info = _study_info(defn, dataset, seed)
    try:
        study = optuna.create_study(
            study_name=defn.study,
            storage=url,
            directions=defn.directions,
            load_if_exists=True,
            sampler=make_sampler(defn, seed),
            pruner=make_pruner(defn),
        )
    except (ValueError, ImportError) as exc:
        raise SearchError(f"storage {url!r}: {exc}", Location(defn.file)) from exc
    stored = study.user_attrs.get(STUDY_ATTR)
    if stored is None:
        study.set_user_attr(STUDY_ATTR, info)
    else:
        _check_resumable(defn, stored, info, study)
    # A resumed study gets a sampler seeded past its trials, so it does not repeat them.
    study.sampler = make_sampler(defn, seed + len(study.trials))
    return study


def _study_info(defn: SearchDef, dataset: Dataset, seed: int) -> dict[str, Any]:
    data = defn.model_dump(mode="json", include=set(FINGERPRINT))
    return {
        "definition": defn.file,
        "mode": defn.mode,
        "metrics": defn.metrics,
        "directions": defn.directions,
        "seed": seed,
        "base": defn.base,
        "base_spec": dump_spec(defn.base_spec),
        "num_classes": dataset.num_classes,
        "dataset": dataset.name,
        "split": [len(dataset.train_idx), len(dataset.val_idx)],
        "setup": data,
    }


def _check_resumable(
    defn: SearchDef, stored: dict[str, Any], info: dict[str, Any], study: optuna.Study
) -> None:
    changed = [k for k in FINGERPRINT if stored["setup"].get(k) != info["setup"].get(k)]
    if stored["base_spec"] != info["base_spec"]:
        changed.append("base")
    if stored["seed"] != info["seed"]:
        changed.append(f"seed ({stored['seed']} -> {info['seed']})")
    if [d.name.lower() for d in study.directions] != defn.directions:
        changed.append("objective directions")
    if changed:
        raise SearchError(
            f"study {defn.study!r} exists with a different setup ({', '.join(changed)}); its "
            "trials would not compare with new ones. Use another study name or --storage.",
            Location(defn.file),
        )


def make_sampler(defn: SearchDef, seed: int) -> optuna.samplers.BaseSampler:
    cfg = defn.sampler
    samplers = optuna.samplers
    if cfg.name == "tpe":
        kwargs = {} if cfg.n_startup_trials is None else {"n_startup_trials": cfg.n_startup_trials}
        return samplers.TPESampler(seed=seed, **kwargs)
    if cfg.name == "nsga2":
        return samplers.NSGAIISampler(seed=seed, population_size=cfg.population_size or 50)
    if cfg.name == "random":
        return samplers.RandomSampler(seed=seed)
    if cfg.name == "grid":
        return samplers.GridSampler(grid_space(defn), seed=seed)
    return samplers.CmaEsSampler(
        seed=seed, n_startup_trials=cfg.n_startup_trials or 1, warn_independent_sampling=False
    )


def make_pruner(defn: SearchDef) -> optuna.pruners.BasePruner:
    cfg = defn.pruner
    if cfg.name == "median":
        # n_min_trials: judge an epoch only against that many trials that reached it (trials
        # rejected before training also "finish", and must not make one trial the median)
        return optuna.pruners.MedianPruner(
            n_startup_trials=cfg.n_startup_trials,
            n_warmup_steps=cfg.n_warmup_steps,
            n_min_trials=max(1, cfg.n_startup_trials),
        )
    if cfg.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=defn.training.epochs)
    return optuna.pruners.NopPruner()


# --- one trial -----------------------------------------------------------------------------


class TrialRunner:
    """The objective: Candidate -> spec -> analysis (constraints) -> model -> latency -> train."""

    def __init__(self, defn: SearchDef, dataset: Dataset, *, seed: int, quiet: bool = False):
        self.defn, self.dataset, self.seed, self.quiet = defn, dataset, seed, quiet
        self.device = pick_device(defn.training.device)
        self.base: Spec = defn.base_spec
        cost = analyze(Candidate().spec(self.base, dataset.num_classes))
        self.base_flops = cost.flops
        self.keys = self._constraint_keys()
        shape = cost.nodes[cost.outputs[0]].shape
        if shape.layout != "C" or shape.dims[0] != dataset.num_classes:
            raise SearchError(
                f"base {self.base.name}: its output is {shape.layout} {shape.dims}; the dataset "
                f"has {dataset.num_classes} classes (give the spec a num_classes option)",
                Location(defn.file),
            )

    def _constraint_keys(self) -> list[str]:
        keys = ["valid"]
        if self.defn.mode == "compound":
            keys += ["ideal_ratio", "flops_ratio"]
        limits = self.defn.constraints
        keys += [k for k in ("max_params", "max_flops", "max_latency_ms") if getattr(limits, k)]
        return keys

    def __call__(self, trial: optuna.Trial) -> list[float]:
        candidate, constraints = suggest(trial, self.defn, self._flops_ratio)
        trial.set_user_attr("candidate", candidate.to_attrs())
        earlier = _same_candidate(trial.study, candidate, trial.number)
        if earlier is not None:
            return self._replay(trial, earlier)
        try:
            spec = candidate.spec(self.base, self.dataset.num_classes)
            cost = analyze(spec)
        except ArchspecError as exc:  # e.g. a resolution too small for the network's strides
            trial.set_user_attr("error", str(exc).splitlines()[0])
            return self._finish(trial, Metrics(0, 0, 0), {**constraints, "valid": 1.0})
        metrics = Metrics(cost.params, cost.flops, spec.input.hw[0])
        constraints |= objectives.cost_constraints(self.defn, metrics)
        if self.defn.mode == "compound":
            trial.set_user_attr("flops_ratio", metrics.flops / self.base_flops)
            constraints["flops_ratio"] = objectives.flops_ratio_constraint(
                self.defn, metrics.flops, self.base_flops
            )
        if not objectives.feasible(constraints):  # rejected from the analysis: nothing built
            return self._finish(trial, metrics, constraints)
        try:
            model = self._model(spec)
            metrics.latency_ms = self._latency(model, spec)
            constraints |= objectives.cost_constraints(self.defn, metrics)
            if not objectives.feasible(constraints):  # too slow: built, never trained
                return self._finish(trial, metrics, constraints)
            result = train(
                model,
                self.dataset.split(spec.input.hw, spec.input.channels, self.device),
                self.defn.training,
                device=self.device,
                seed=self.seed,
                report=self._reporter(trial, metrics, constraints),
                progress=not self.quiet,
                desc=f"trial {trial.number}",
            )
        except torch.OutOfMemoryError:  # too big for the device: infeasible, not a crash
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            trial.set_user_attr("error", f"out of memory on {self.device}")
            return self._finish(trial, metrics, {**constraints, "valid": 1.0})
        metrics.accuracy = result.accuracy
        trial.set_user_attr("history", result.history)
        trial.set_user_attr("train_s", round(result.seconds, 2))
        return self._finish(trial, metrics, constraints)

    def _replay(self, trial: optuna.Trial, earlier: FrozenTrial) -> list[float]:
        """A candidate evaluated before gets that result again, untrained: training is
        deterministic (same seed, split, order), so it would only repeat the same numbers."""
        for key, value in earlier.user_attrs.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("same_as", earlier.number)
        for key, value in earlier.user_attrs.get("constraints", {}).items():
            trial.set_constraint(key, value)
        if earlier.state == TrialState.PRUNED:
            for step, value in sorted(earlier.intermediate_values.items()):
                trial.report(value, step)
            raise optuna.TrialPruned(f"same candidate as trial {earlier.number}, pruned")
        return list(earlier.values)

    def _flops_ratio(self, candidate: Candidate) -> float:
        """FLOPs of a candidate over the base's, from the analysis (math.inf if invalid)."""
        try:
            return (
                analyze(candidate.spec(self.base, self.dataset.num_classes)).flops / self.base_flops
            )
        except ArchspecError:
            return math.inf

    def measure(self, candidate: Candidate, desc: str = "") -> Metrics:
        """Build, time and train one candidate with the study's recipe, no constraints."""
        spec = candidate.spec(self.base, self.dataset.num_classes)
        cost = analyze(spec)
        metrics = Metrics(cost.params, cost.flops, spec.input.hw[0])
        model = self._model(spec)
        metrics.latency_ms = self._latency(model, spec)
        split = self.dataset.split(spec.input.hw, spec.input.channels, self.device)
        result = train(
            model,
            split,
            self.defn.training,
            device=self.device,
            seed=self.seed,
            progress=not self.quiet,
            desc=desc,
        )
        metrics.accuracy = result.accuracy
        return metrics

    def _model(self, spec: Spec) -> torch.nn.Module:
        seed_everything(self.seed)  # the same initial weights for the same architecture
        return build(spec, device=self.device)

    def _latency(self, model: torch.nn.Module, spec: Spec) -> float:
        shape = (spec.input.channels, *spec.input.hw)
        cfg = self.defn.latency
        return measure_latency(model, shape, self.device, warmup=cfg.warmup, repeats=cfg.repeats)

    def _reporter(
        self, trial: optuna.Trial, metrics: Metrics, constraints: dict[str, float]
    ) -> Callable[[int, float], None] | None:
        """Per-epoch validation reports for the pruner (single objective only, as in Optuna)."""
        if len(self.defn.objectives) > 1 or self.defn.metrics[0] not in ("accuracy", "reward"):
            return None

        def report(epoch: int, accuracy: float) -> None:
            value = objectives.values(self.defn, replace(metrics, accuracy=accuracy))[0]
            trial.report(value, epoch)
            if trial.should_prune():
                self._record(trial, replace(metrics, accuracy=accuracy), constraints)
                trial.set_user_attr("pruned_at_epoch", epoch + 1)
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}")

        return report

    def _record(self, trial: optuna.Trial, metrics: Metrics, constraints: dict[str, float]) -> None:
        full = {key: float(constraints.get(key, 0.0)) for key in self.keys}
        for key, value in full.items():
            trial.set_constraint(key, value)
        trial.set_user_attr("constraints", full)
        trial.set_user_attr("feasible", objectives.feasible(full))
        for key, value in metrics.to_attrs().items():
            trial.set_user_attr(key, value)

    def _finish(
        self, trial: optuna.Trial, metrics: Metrics, constraints: dict[str, float]
    ) -> list[float]:
        self._record(trial, metrics, constraints)
        if objectives.feasible(constraints) and metrics.accuracy is not None:
            return objectives.values(self.defn, metrics)
        return objectives.penalty(self.defn, metrics)


def _same_candidate(study: optuna.Study, candidate: Candidate, number: int) -> FrozenTrial | None:
    attrs = candidate.to_attrs()
    for earlier in study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
    ):
        if earlier.number != number and earlier.user_attrs.get("candidate") == attrs:
            if "constraints" in earlier.user_attrs:
                return earlier
    return None


# --- results -------------------------------------------------------------------------------


def feasible_trials(study: optuna.Study) -> list[FrozenTrial]:
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("feasible")
    ]


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best feasible trial of a single-objective study (None when there is none)."""
    trials = feasible_trials(study)
    if not trials:
        return None
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(trials, key=lambda t: (sign * t.values[0], -t.number))


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible Pareto front (for one objective: the best trial)."""
    if len(study.directions) == 1:
        best = best_trial(study)
        return [best] if best else []
    return sorted(study.best_trials, key=lambda t: t.number)


def study_info(study: optuna.Study) -> dict[str, Any]:
    info = study.user_attrs.get(STUDY_ATTR)
    if info is None:
        raise SearchError(f"study {study.study_name!r} was not created by archspec search")
    return info


def load_study(study: str, storage: str | None = None) -> optuna.Study:
    """A stored study from a search definition file, or a study name (+ storage URL)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if study.endswith((".yaml", ".yml")):
        from archspec.search.definition import load_search

        defn = load_search(study)
        name, url = defn.study, storage or defn.storage_url
    else:
        name, url = study, storage or default_storage(study)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        raise SearchError(
            f"no study database {url[len('sqlite:///') :]!r}; run `archspec search` first, "
            "or pass --storage"
        )
    try:
        return optuna.load_study(study_name=name, storage=url)
    except KeyError as exc:
        names = optuna.get_all_study_names(url)
        raise SearchError(
            f"no study {name!r} in {url}; it holds: {', '.join(names) or 'none'}"
        ) from exc


# --- compound step 2 -------------------------------------------------------------------------


def run_family(study: optuna.Study, runner: TrialRunner) -> list[dict[str, Any]]:
    """EfficientNet step 2: the best alpha, beta, gamma raised to phi = 1..K, each trained with
    the same recipe. Stored on the study; recomputed only when the best trial changes."""
    best = best_trial(study)
    if best is None:
        return []
    phis = runner.defn.compound.phi
    stored = study.user_attrs.get("family")
    if stored and stored.get("trial") == best.number and len(stored["members"]) == phis:
        return stored["members"]
    base = Candidate.from_attrs(best.user_attrs["candidate"])
    members = [_member(1, base, best.user_attrs, best.number)]
    for phi in range(2, phis + 1):
        candidate = base.power(phi)
        try:
            metrics = runner.measure(candidate, desc=f"phi={phi}").to_attrs()
        except ArchspecError as exc:
            metrics = {"error": str(exc).splitlines()[0]}
        members.append(_member(phi, candidate, metrics, None))
    study.set_user_attr("family", {"trial": best.number, "members": members})
    return members


def _member(
    phi: int, candidate: Candidate, metrics: dict[str, Any], trial: int | None
) -> dict[str, Any]:
    keys = ("accuracy", "params", "flops", "latency_ms", "size", "error")
    return {
        "phi": phi,
        "trial": trial,
        "candidate": candidate.to_attrs(),
        **{k: metrics[k] for k in keys if k in metrics},
    }


# --- progress ------------------------------------------------------------------------------


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
    if trial.state == TrialState.COMPLETE and not trial.user_attrs.get("feasible", True):
        return "infeasible"
    return trial.state.name.lower()
