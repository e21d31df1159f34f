"""One trial, the study's objective: Candidate -> network -> analysis (constraints) -> model ->
latency -> train.

Everything is judged on the network that was built, not on the sampled knobs: the compound
FLOPs band and the alpha * beta^2 * gamma^2 rule on its analysed FLOPs and effective depth,
width and resolution (archspec.scaling.measured), params/FLOPs limits from the analysis before
anything is built, a latency limit after building, before training. A trial is a distinct
network (the sha256 of its resolved YAML): a proposal that rebuilds an earlier trial's network
is told to the sampler (PRUNED, no value, marked as a repeat) and is not a trial; the worker
asks again. In compound mode the band's networks are listed up front where that is cheap
(archspec.search.budget.band_networks) and the sampler chooses among them.

How outcomes reach Optuna: a trained candidate completes with its objective values; a
rejected one completes with the worst values (never a made-up accuracy) and its constraint
values, which is what TPE's and NSGA-II's constraint handling (and `study.best_trial`) read;
the base (trial 0, the reference every table compares with) is stored as PRUNED, so no
sampler ranks or breeds from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from archspec.analysis import analyze
from archspec.errors import ArchspecError, Location, SearchError
from archspec.scaling.measured import Effective, effective
from archspec.search.budget import BandNetwork, band_networks, fit_flops
from archspec.search.definition import objectives
from archspec.search.definition.model import Range, SearchDef
from archspec.search.definition.objectives import Metrics
from archspec.search.definition.space import Candidate, reference_spec, suggest
from archspec.search.recipe import Recipe
from archspec.search.study.optuna_private import trial_id
from archspec.search.study.records import (
    REPEAT_KEY,
    ROLE_KEY,
    TrialRecord,
    read_trial,
    spec_hash,
    write_trial,
)
from archspec.search.study.runs import WeightStore, trial_key
from archspec.spec.dump import dump_spec
from archspec.spec.model import Spec
from archspec.train.data import Dataset

BASE_REASON = "the unscaled base: the reference every table compares with, not a candidate"
# optuna-dashboard reads constraints from this system attribute only (the list that Optuna's
# `constraints_func` writes), not from `trial.set_constraint`'s per-key attributes: both are
# written, so the samplers and the dashboard agree on what was infeasible.
DASHBOARD_CONSTRAINTS = "constraints"


def band_of(defn: SearchDef, base: Spec) -> list[BandNetwork] | None:
    """Compound mode: every distinct network of the FLOPs band within the space's ranges (what
    step 1 chooses among), or None where that is not cheap to list, or in free mode."""
    if defn.mode != "compound":
        return None
    space, cfg = defn.space, defn.compound

    def bounds(rng: Range | None) -> tuple[float, float]:
        return (1.0, 1.0) if rng is None else (rng.low, rng.high)

    return band_networks(
        base,
        cfg.flops_ratio,
        width=bounds(space.width),
        depth=bounds(space.depth),
        resolution=bounds(space.resolution),
        kernels={stage: list(c) for stage, c in space.kernels.items()} or None,
        tolerance=cfg.tolerance,
        product_tolerance=cfg.product_tolerance,
        depth_rule=cfg.depth_rule,
    )


def network(
    defn: SearchDef,
    base: Spec,
    candidate: Candidate,
    target: float | None,
    networks: list[BandNetwork] | None = None,
) -> Spec:
    """The network a candidate builds: one of the band's `networks`, chosen by label; compound
    mode, the one nearest `target` times the base's FLOPs around its multipliers; free mode,
    the base scaled by them."""
    if candidate.network is not None and networks is not None:
        return next(n.spec for n in networks if n.label == candidate.network)
    if defn.mode == "compound" and target is not None:
        spec, _ = fit_flops(
            base,
            target,
            width=candidate.width,
            depth=candidate.depth,
            resolution=candidate.resolution,
            kernels=dict(candidate.kernels) or None,
            tolerance=defn.compound.tolerance,
            depth_rule=defn.compound.depth_rule,
        )
        return spec
    return candidate.spec(base)


def effective_record(base: Spec, spec: Spec) -> tuple[Effective, Metrics]:
    cost = analyze(spec)
    return effective(base, spec, cost), Metrics(cost.params, cost.flops, spec.input.hw[0])


class TrialRunner:
    """The objective of the study's trials."""

    def __init__(
        self,
        defn: SearchDef,
        dataset: Dataset,
        *,
        seed: int,
        quiet: bool = False,
        weights: WeightStore | None = None,
    ):
        self.defn, self.dataset, self.seed, self.quiet = defn, dataset, seed, quiet
        self.recipe = Recipe(defn, dataset, quiet=quiet, weights=weights)
        self.base = reference_spec(defn.base_spec, dataset.num_classes)
        cost = analyze(self.base)
        self.base_params, self.base_flops = cost.params, cost.flops
        self.keys = self._constraint_keys()
        self.networks = band_of(defn, self.base)
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
            keys += ["flops_ratio", "product"]
        limits = self.defn.constraints
        keys += [k for k in ("max_params", "max_flops", "max_latency_ms") if getattr(limits, k)]
        return keys

    def __call__(self, trial: optuna.Trial) -> list[float]:
        if trial.user_attrs.get(ROLE_KEY) == "base":
            self._base_trial(trial)
        candidate = suggest(trial, self.defn, self.networks)
        knobs = candidate.to_attrs()
        try:
            spec = network(
                self.defn, self.base, candidate, self.defn.compound.flops_ratio, self.networks
            )
            text = dump_spec(spec)
        except ArchspecError as exc:  # e.g. a resolution too small for the network's strides
            record = TrialRecord(
                status="rejected",
                reason=f"invalid network: {str(exc).splitlines()[0]}",
                knobs=knobs,
                constraints=self._full({"valid": 1.0}),
            )
            return self._finish(trial, record, None, Metrics(0, 0, 0))
        digest = spec_hash(text)
        earlier = same_network(trial.study, digest, trial.number)
        if earlier is not None:
            self._repeat(trial, knobs, earlier)
        eff, metrics = effective_record(self.base, spec)
        constraints = objectives.cost_constraints(self.defn, metrics)
        if self.defn.mode == "compound":
            constraints |= objectives.compound_constraints(self.defn, eff.flops_ratio, eff.product)
        record = TrialRecord(
            status="rejected",
            knobs=knobs,
            spec_hash=digest,
            effective=eff,
            params=metrics.params,
            flops=metrics.flops,
            size=metrics.size,
            constraints=self._full(constraints),
        )
        if not record.feasible:  # rejected from the analysis: nothing built
            return self._finish(trial, self._rejected(record), text, metrics)
        try:
            model = self.recipe.model(spec, self.seed)
            metrics.latency_ms = self.recipe.latency(model, spec)
            constraints |= objectives.cost_constraints(self.defn, metrics)
            record = record.model_copy(
                update={"latency_ms": metrics.latency_ms, "constraints": self._full(constraints)}
            )
            if not record.feasible:  # too slow: built, never trained
                return self._finish(trial, self._rejected(record), text, metrics)
            result = self.recipe.train(
                model,
                spec,
                self.seed,
                report=self._reporter(trial, record, text, metrics),
                desc=f"trial {trial.number}",
                keep=trial_key(trial.number),
            )
        except torch.OutOfMemoryError:  # too big for the device: infeasible, not a crash
            if self.recipe.device.type == "cuda":
                torch.cuda.empty_cache()
            record = record.model_copy(
                update={
                    "reason": f"out of memory on {self.recipe.device}",
                    "constraints": self._full({**constraints, "valid": 1.0}),
                }
            )
            return self._finish(trial, record, text, metrics)
        if not all(bool(p.isfinite().all()) for p in model.parameters()):
            # the loss went NaN/inf: the weights are garbage, its accuracy means nothing
            record = record.model_copy(
                update={
                    "reason": "diverged: non-finite weights after training",
                    "constraints": self._full({**constraints, "valid": 1.0}),
                }
            )
            return self._finish(trial, record, text, metrics)
        metrics.accuracy = result.accuracy
        record = record.model_copy(
            update={
                "status": "trained",
                "accuracy": result.accuracy,
                "history": result.history,
                "train_s": round(result.seconds, 2),
            }
        )
        return self._finish(trial, record, text, metrics)

    def _base_trial(self, trial: optuna.Trial) -> None:
        """Trial 0: the unscaled base, trained with the same recipe; stored, then PRUNED."""
        text = dump_spec(self.base)
        eff, metrics = effective_record(self.base, self.base)
        model = self.recipe.model(self.base, self.seed)
        metrics.latency_ms = self.recipe.latency(model, self.base)
        result = self.recipe.train(
            model, self.base, self.seed, desc="base", keep=trial_key(trial.number)
        )
        constraints = objectives.cost_constraints(self.defn, metrics)
        if self.defn.mode == "compound":
            constraints |= objectives.compound_constraints(self.defn, 1.0, 1.0)
        record = TrialRecord(
            role="base",
            status="trained",
            reason=BASE_REASON,
            knobs=Candidate().to_attrs(),
            spec_hash=spec_hash(text),
            effective=eff,
            params=metrics.params,
            flops=metrics.flops,
            size=metrics.size,
            latency_ms=metrics.latency_ms,
            accuracy=result.accuracy,
            constraints=self._full(constraints),
            history=result.history,
            train_s=round(result.seconds, 2),
        )
        write_trial(trial, record, text)
        if self._reports():
            # its curve, and (Optuna: a PRUNED trial's value is its last report) its value,
            # for optuna-dashboard; no pruner or sampler reads a PRUNED trial without params
            for epoch, accuracy in enumerate(result.history):
                metrics.accuracy = accuracy
                trial.report(objectives.values(self.defn, metrics)[0], epoch)
        raise optuna.TrialPruned(BASE_REASON)

    def _reports(self) -> bool:
        """Per-epoch values reach Optuna: one objective, accuracy or reward (as in Optuna,
        intermediate values are for a single objective)."""
        return len(self.defn.objectives) == 1 and self.defn.metrics[0] in ("accuracy", "reward")

    def _rejected(self, record: TrialRecord) -> TrialRecord:
        over = [f"{k} {v:+.3f}" for k, v in record.constraints.items() if v > 0]
        detail = ""
        if record.effective is not None and self.defn.mode == "compound":
            detail = (
                f"; FLOPs ratio {record.effective.flops_ratio:.3f}, effective product "
                f"{record.effective.product:.3f} (target {self.defn.compound.flops_ratio:g})"
            )
        return record.model_copy(
            update={"reason": f"rejected before training: violates {', '.join(over)}{detail}"}
        )

    def _repeat(self, trial: optuna.Trial, knobs: dict, earlier: FrozenTrial) -> NoReturn:
        """The proposal rebuilds an earlier trial's network: not a trial. Told to the sampler
        as PRUNED with no value (so it learns that these knobs bring nothing new), marked so
        that nothing counts or ranks it, and the sampler is asked again."""
        first = read_trial(earlier)
        assert first is not None
        record = first.model_copy(
            update={
                "role": "candidate",
                "status": "duplicate",
                "knobs": knobs,
                "same_as": earlier.number,
                "history": [],
                "reason": f"rebuilds the network of trial {earlier.number}: not a trial, the "
                "sampler is asked again",
            }
        )
        write_trial(trial, record)
        trial.set_user_attr(REPEAT_KEY, earlier.number)
        raise optuna.TrialPruned(record.reason)

    def _reporter(
        self, trial: optuna.Trial, record: TrialRecord, text: str, metrics: Metrics
    ) -> Callable[[int, float], None] | None:
        """Per-epoch validation reports for the pruner (single objective only, as in Optuna)."""
        if not self._reports():
            return None
        history: list[float] = []

        def report(epoch: int, accuracy: float) -> None:
            history.append(accuracy)
            metrics.accuracy = accuracy
            value = objectives.values(self.defn, metrics)[0]
            trial.report(value, epoch)
            if trial.should_prune():
                pruned = record.model_copy(
                    update={
                        "status": "pruned",
                        "reason": f"pruned by the {self.defn.pruner.name} pruner after epoch "
                        f"{epoch + 1}",
                        "history": list(history),
                    }
                )
                self._record(trial, pruned, text)
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}")

        return report

    def _full(self, constraints: dict[str, float]) -> dict[str, float]:
        return {key: float(constraints.get(key, 0.0)) for key in self.keys}

    def _record(self, trial: optuna.Trial, record: TrialRecord, text: str | None) -> None:
        for key, value in record.constraints.items():
            trial.set_constraint(key, value)
        trial.storage.set_trial_system_attr(
            trial_id(trial), DASHBOARD_CONSTRAINTS, list(record.constraints.values())
        )
        write_trial(trial, record, text)

    def _finish(
        self, trial: optuna.Trial, record: TrialRecord, text: str | None, metrics: Metrics
    ) -> list[float]:
        self._record(trial, record, text)
        if record.feasible and record.accuracy is not None:
            return objectives.values(self.defn, metrics)
        return objectives.penalty(self.defn, metrics)


def same_network(study: optuna.Study, digest: str, number: int) -> FrozenTrial | None:
    """The first finished trial that built the network with this hash."""
    for earlier in study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
    ):
        if earlier.number == number:
            continue
        record = read_trial(earlier)
        if record is not None and record.spec_hash == digest and record.same_as is None:
            return earlier
    return None
