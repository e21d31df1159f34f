"""The search space: what a trial chooses (a Candidate: nominal multipliers and kernels) and how
Optuna proposes it.

`free` mode samples depth, width and resolution multipliers independently. `compound` mode
follows EfficientNet step 1 (Tan & Le 2019, sec. 3.3): it samples beta (width) and gamma
(resolution) and solves alpha (depth) = flops_ratio / (beta^2 * gamma^2), clamped to the depth
range; the trial then builds the network nearest the FLOPs target around these multipliers
(archspec.search.budget.fit_flops), and its constraints are checked on what that network has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import optuna

from archspec.scaling.rewrite import scale
from archspec.scaling.rules import scale_size
from archspec.spec.model import Spec

if TYPE_CHECKING:
    from archspec.search.budget import BandNetwork
    from archspec.search.definition.model import Range, SearchDef

KERNEL_PREFIX = "kernel_"
NETWORK_PARAM = "network"  # compound mode, band enumerated: the parameter the sampler chooses


@dataclass(frozen=True)
class Candidate:
    """One architecture of the search: multipliers applied to the base, kernels per stage."""

    depth: float = 1.0
    width: float = 1.0
    resolution: float = 1.0
    kernels: dict[str, int] = field(default_factory=dict)
    network: str | None = None  # compound mode, band enumerated: the network chosen, by label

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
        attrs = {
            "depth": self.depth,
            "width": self.width,
            "resolution": self.resolution,
            "kernels": dict(self.kernels),
        }
        return attrs if self.network is None else {**attrs, "network": self.network}

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> Candidate:
        return cls(
            float(attrs["depth"]),
            float(attrs["width"]),
            float(attrs["resolution"]),
            {k: int(v) for k, v in attrs.get("kernels", {}).items()},
            attrs.get("network"),
        )

    def describe(self) -> str:
        if self.network is not None:
            return f"network {self.network}"
        text = f"d={self.depth:.3g} w={self.width:.3g} r={self.resolution:.3g}"
        return text + "".join(f" {k}:k{v}" for k, v in self.kernels.items())


def reference_spec(base: Spec, num_classes: int) -> Spec:
    """The base with the dataset's class count: trial 0's network, what every candidate's
    effective multipliers are relative to."""
    return Candidate().spec(base, num_classes)


def _suggest(trial: optuna.Trial, name: str, rng: Range | None) -> float:
    if rng is None:
        return 1.0
    if rng.low == rng.high:
        return rng.low
    return trial.suggest_float(name, rng.low, rng.high, step=rng.step, log=rng.log)


def suggest(
    trial: optuna.Trial, defn: SearchDef, networks: list[BandNetwork] | None = None
) -> Candidate:
    """The candidate this trial proposes: in compound mode with the band's `networks`
    enumerated, one of them (by label); else nominal multipliers and kernels."""
    space = defn.space
    if defn.mode == "compound" and networks is not None:
        label = trial.suggest_categorical(NETWORK_PARAM, [n.label for n in networks])
        chosen = next(n for n in networks if n.label == label)
        return Candidate(
            chosen.depth, chosen.width, chosen.resolution, dict(chosen.kernels), chosen.label
        )
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
        )
    assert space.depth is not None
    beta = _suggest(trial, "beta", space.width)
    gamma = _suggest(trial, "gamma", space.resolution)
    ideal = defn.compound.flops_ratio / (beta**2 * gamma**2)
    alpha = min(max(ideal, space.depth.low), space.depth.high)
    return Candidate(alpha, beta, gamma, kernels)


def grid_space(defn: SearchDef, networks: list[BandNetwork] | None = None) -> dict[str, list[Any]]:
    """The search space as the grid sampler wants it: every value of every parameter (in
    compound mode with the band enumerated: every network of it)."""
    space = defn.space
    if defn.mode == "compound" and networks is not None:
        return {NETWORK_PARAM: [n.label for n in networks]}
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


def largest_input(defn: SearchDef) -> int:
    """The largest input side (pixels) any network of this search can be trained or evaluated
    at: the base input scaled by the largest resolution multiplier (in compound mode raised to
    the family's last phi), one size step more (the FLOPs fit may round up to the neighbouring
    size), times `training.test_size_ratio`. What the image cache decodes at."""
    spec = defn.base_spec
    top = defn.space.resolution.high if defn.space.resolution is not None else 1.0
    if defn.mode == "compound":
        top = max(top, 1.0) ** defn.compound.phi
    multiple = spec.input.size_multiple
    side = max(max(scale_size(spec.input.hw, max(top, 1.0), multiple)), *spec.input.hw)
    if top > 1.0:
        side += multiple
    return math.ceil(side * (defn.training.test_size_ratio or 1.0))
