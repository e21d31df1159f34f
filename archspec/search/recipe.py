"""The study's recipe applied to one network: initial weights from the seed, the latency probe,
training on the fixed split, and scoring. Trials, the compound family and the seeds
re-evaluation all go through here, so retraining an exported spec with the study's recipe
and seed reproduces its trial's accuracy exactly (on CPU).

Order matters for that: the global RNG is seeded right before the model is built; nothing
else draws from it before training (the latency probe has its own generator, the batch order
its own `torch.Generator`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from archspec.compile import build
from archspec.search.definition.model import SearchDef
from archspec.search.latency import measure_latency
from archspec.search.study.runs import WeightStore
from archspec.spec.model import Spec
from archspec.train.data import Dataset
from archspec.train.loop import TrainResult, evaluate_part, pick_device, seed_everything, train


@dataclass(frozen=True)
class Scored:
    val: float
    test: float


class Recipe:
    """How every network of a study is built, timed, trained and scored."""

    def __init__(
        self,
        defn: SearchDef,
        dataset: Dataset,
        *,
        quiet: bool = False,
        weights: WeightStore | None = None,
    ):
        self.defn, self.dataset, self.quiet = defn, dataset, quiet
        self.device = pick_device(defn.training.device)
        self.weights = weights  # where trained weights are kept, for the search's bundles

    def model(self, spec: Spec, seed: int) -> torch.nn.Module:
        seed_everything(seed)  # the same initial weights for the same architecture and seed
        return build(spec, device=self.device)

    def latency(self, model: torch.nn.Module, spec: Spec) -> float:
        cfg = self.defn.latency
        shape = (spec.input.channels, *spec.input.hw)
        return measure_latency(model, shape, self.device, warmup=cfg.warmup, repeats=cfg.repeats)

    def train(
        self,
        model: torch.nn.Module,
        spec: Spec,
        seed: int,
        *,
        report: Callable[[int, float], None] | None = None,
        desc: str = "",
        keep: str | None = None,
    ) -> TrainResult:
        """Train with the study's recipe; `keep` names the trained weights in the weight store
        (the weights the network was evaluated with: the EMA weights when `training.ema` is on)."""
        result = train(
            model,
            self._split(spec),
            self.defn.training,
            device=self.device,
            seed=seed,
            report=report,
            progress=not self.quiet,
            desc=desc,
            log_dir=self.log_dir(keep),
        )
        if keep is not None and self.weights is not None:
            self.weights.save(keep, model)
        return result

    def log_dir(self, key: str | None) -> Path | None:
        """Where a kept training's curves go: runs/STUDY/tb/KEY (trial-N, phi-K)."""
        if key is None or self.weights is None:
            return None
        return self.weights.folder.parent / "tb" / key

    def test_accuracy(self, model: torch.nn.Module, spec: Spec) -> float:
        """Top-1 on the held-out test split: only the final re-evaluation calls this."""
        return evaluate_part(model, self._split(spec).test, self.device)

    def _split(self, spec: Spec):
        """The study's split at the network's input, augmented as the recipe says."""
        channels = spec.input.channels
        return self.dataset.split(spec.input.hw, channels, self.device, self.defn.training)

    def score(self, spec: Spec, seed: int, desc: str = "") -> Scored:
        """Build and train `spec` from `seed`; validation and test top-1."""
        model = self.model(spec, seed)
        result = self.train(model, spec, seed, desc=desc)
        return Scored(result.accuracy, self.test_accuracy(model, spec))
