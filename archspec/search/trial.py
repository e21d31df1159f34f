"""One trial, the study's objective: Candidate -> spec -> analysis (constraints) -> model ->
latency -> train.

Params/FLOPs (and in compound mode the FLOPs ratio) are checked from the analysis before
anything is built; a latency limit after building, before training. An infeasible candidate
is never trained: it completes with penalty values and its constraint values
(`trial.set_constraint`), so TPE and NSGA-II learn where the feasible region is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from archspec.analysis import analyze
from archspec.compile import build
from archspec.errors import ArchspecError, Location, SearchError
from archspec.search import objectives
from archspec.search.data import Dataset
from archspec.search.definition import SearchDef
from archspec.search.latency import measure_latency
from archspec.search.objectives import Metrics
from archspec.search.space import Candidate, suggest
from archspec.search.train import pick_device, seed_everything, train
from archspec.spec.model import Spec


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
