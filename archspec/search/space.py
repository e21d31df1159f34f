"""The search space: what a trial chooses (a Candidate) and how Optuna proposes it.

`free` mode samples depth, width and resolution multipliers independently. `compound` mode
follows EfficientNet step 1 (Tan & Le 2019, sec. 3.3): it samples beta (width) and gamma
(resolution) and solves alpha (depth). Repeats are rounded up (ceil(repeats * alpha)), so on a
small base most alphas overshoot the FLOPs rule; alpha is therefore the depth multiplier whose
analysed FLOPs ratio is nearest to `flops_ratio` and, among those giving the same repeats, the
one nearest to the ideal flops_ratio / (beta^2 * gamma^2). Both the ideal product
alpha * beta^2 * gamma^2 and the analysed ratio are then checked against the tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import optuna

from archspec.scale import scale
from archspec.search.definition import Range, SearchDef
from archspec.spec.model import Spec

KERNEL_PREFIX = "kernel_"


@dataclass(frozen=True)
class Candidate:
    """One architecture of the search: multipliers applied to the base, kernels per stage."""

    depth: float = 1.0
    width: float = 1.0
    resolution: float = 1.0
    kernels: dict[str, int] = field(default_factory=dict)

    def spec(self, base: Spec, num_classes: int | None = None) -> Spec:
        """The base scaled by this candidate; `num_classes` becomes the default of the spec's
        num_classes option, so the result builds the evaluated model with no arguments."""
        options = None
        if num_classes is not None and "num_classes" in base.options:
            options = {"num_classes": num_classes}
        return scale(
            base,
            depth=self.depth,
            width=self.width,
            resolution=self.resolution,
            kernels=dict(self.kernels) or None,
            options=options,
        )

    def power(self, phi: int) -> Candidate:
        """EfficientNet step 2: alpha^phi, beta^phi, gamma^phi (kernels unchanged)."""
        return replace(
            self, depth=self.depth**phi, width=self.width**phi, resolution=self.resolution**phi
        )

    def to_attrs(self) -> dict[str, Any]:
        return {
            "depth": self.depth,
            "width": self.width,
            "resolution": self.resolution,
            "kernels": dict(self.kernels),
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> Candidate:
        return cls(
            float(attrs["depth"]),
            float(attrs["width"]),
            float(attrs["resolution"]),
            {k: int(v) for k, v in attrs.get("kernels", {}).items()},
        )

    def describe(self) -> str:
        text = f"d={self.depth:.3g} w={self.width:.3g} r={self.resolution:.3g}"
        return text + "".join(f" {k}:k{v}" for k, v in self.kernels.items())


def _suggest(trial: optuna.Trial, name: str, rng: Range | None) -> float:
    if rng is None:
        return 1.0
    if rng.low == rng.high:
        return rng.low
    return trial.suggest_float(name, rng.low, rng.high, step=rng.step, log=rng.log)


def suggest(
    trial: optuna.Trial, defn: SearchDef, flops_ratio: Callable[[Candidate], float] | None = None
) -> tuple[Candidate, dict[str, float]]:
    """A candidate for this trial and the constraint values the proposal alone decides
    (<= 0 is feasible). Compound mode needs `flops_ratio`: a candidate's FLOPs over the base's."""
    space = defn.space
    kernels = {
        stage: int(trial.suggest_categorical(KERNEL_PREFIX + stage, choices))
        for stage, choices in space.kernels.items()
        if len(choices) > 1
    }
    kernels |= {stage: c[0] for stage, c in space.kernels.items() if len(c) == 1}
    if defn.mode == "free":
        return Candidate(
            _suggest(trial, "depth", space.depth),
            _suggest(trial, "width", space.width),
            _suggest(trial, "resolution", space.resolution),
            kernels,
        ), {}
    assert flops_ratio is not None and space.depth is not None
    beta = _suggest(trial, "beta", space.width)
    gamma = _suggest(trial, "gamma", space.resolution)
    target = defn.compound.flops_ratio
    ideal = target / (beta**2 * gamma**2)
    options = [Candidate(a, beta, gamma, kernels) for a in _alphas(space.depth, ideal, defn)]
    ratios = [flops_ratio(c) for c in options]
    best = min(
        range(len(options)),
        key=lambda i: (round(abs(ratios[i] - target), 9), abs(options[i].depth - ideal)),
    )
    candidate = options[best]
    trial.set_user_attr("alpha", candidate.depth)
    product = candidate.depth * beta**2 * gamma**2
    trial.set_user_attr("ideal_ratio", product)
    return candidate, {"ideal_ratio": abs(product / target - 1) - defn.compound.tolerance}


def _alphas(depth: Range, ideal: float, defn: SearchDef) -> list[float]:
    """Depth multipliers worth trying: the range's grid, or else its ends, the ideal alpha and
    every value where a stage's rounded-up repeat count changes (k / repeats, just below)."""
    if depth.step is not None:
        return depth.grid()
    values = {depth.low, depth.high, min(max(ideal, depth.low), depth.high)}
    for repeats in stage_repeats(defn.base_spec):
        k = math.floor(repeats * depth.low) + 1
        while k / repeats <= depth.high:
            values.add(k / repeats - 1e-9)  # ceil(repeats * value) == k, safe from rounding
            k += 1
    return sorted(v for v in values if depth.low <= v <= depth.high)


def stage_repeats(spec: Spec) -> set[int]:
    """The literal repeat counts written in a spec (stages and groups, blocks included)."""
    from archspec.spec.load import iter_items

    return {item.repeat for _, item in iter_items(spec) if isinstance(item.repeat, int)}


def grid_space(defn: SearchDef) -> dict[str, list[Any]]:
    """The search space as the grid sampler wants it: every value of every parameter."""
    space = defn.space
    names = ("beta", "gamma") if defn.mode == "compound" else ("depth", "width", "resolution")
    knobs = (
        (space.width, space.resolution)
        if defn.mode == "compound"
        else (space.depth, space.width, space.resolution)
    )
    grid: dict[str, list[Any]] = {}
    for name, rng in zip(names, knobs, strict=True):
        if rng is not None and rng.low != rng.high:
            grid[name] = rng.grid()
    for stage, choices in space.kernels.items():
        if len(choices) > 1:
            grid[KERNEL_PREFIX + stage] = list(choices)
    return grid
