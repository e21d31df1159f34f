"""Search definitions (`search/*.yaml`): pydantic models, validated with located errors.

A definition names a base spec, the knobs to search (depth, width and resolution multipliers,
kernel choices per named stage), the data and training budget, the objectives and constraints,
the Optuna sampler, pruner and storage. Checks that need the base spec (stage names, class
count) run here too, so a bad definition fails before any trial.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from archspec.spec.model import Multiplier, Name, Spec
from archspec.train.config import Data, Training

Metric = Literal["accuracy", "params", "flops", "latency_ms", "reward"]
MAXIMIZED = {"accuracy", "reward"}
MAX_RANGE_VALUES = 10_000  # values of one stepped range
MAX_GRID_POINTS = 1_000_000  # points the grid sampler enumerates


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _named(value: Any) -> Any:
    """`sampler: tpe` is shorthand for `sampler: {name: tpe}`."""
    return {"name": value} if isinstance(value, str) else value


class Range(_Strict):
    """A multiplier range; `step` makes it discrete (needed by the grid sampler)."""

    low: Multiplier
    high: Multiplier
    step: Annotated[float, Field(gt=0, le=16)] | None = None
    log: bool = False

    @model_validator(mode="before")
    @classmethod
    def _pair(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) == 2:
            return {"low": value[0], "high": value[1]}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if self.step is not None and self.log:
            raise ValueError("a range takes either step or log, not both")
        span = self.high - self.low
        if self.step is not None and span > 0:
            steps = span / self.step
            if abs(steps - round(steps)) > 1e-6 * max(1.0, steps) or round(steps) < 1:
                raise ValueError(
                    f"step {self.step:g} does not divide the range {self.low:g}..{self.high:g} "
                    f"(a span of {span:g}): {self.high:g} would never be tried; use a step "
                    "that divides it"
                )
        if self.step is not None and self.values > MAX_RANGE_VALUES:
            raise ValueError(
                f"step {self.step:g} gives {_count(self.values)} values from {self.low:g} to "
                f"{self.high:g}; at most {MAX_RANGE_VALUES:,} (use a larger step)"
            )
        return self

    @property
    def values(self) -> float:
        """How many values a stepped range has (a float: it may be astronomically many)."""
        assert self.step is not None
        return math.floor((self.high - self.low) / self.step + 1e-9) + 1

    def grid(self) -> list[float]:
        """Every value of a stepped range, low to high."""
        assert self.step is not None
        count = int((self.high - self.low) / self.step + 1e-9)
        return [round(self.low + i * self.step, 10) for i in range(count + 1)]


def _count(value: float) -> str:
    return f"{value:,.0f}" if value < 1e9 else f"{value:.2g}"


class Space(_Strict):
    """The knobs. In `free` mode `depth`, `width`, `resolution` are independent multipliers; in
    `compound` mode they bound EfficientNet's alpha, beta and gamma. A missing knob stays 1."""

    depth: Range | None = None
    width: Range | None = None
    resolution: Range | None = None
    kernels: dict[
        Name, Annotated[list[Annotated[int, Field(ge=1, le=31)]], Field(min_length=1)]
    ] = Field(default_factory=dict, description="kernel sizes to choose from, per named stage")


class Compound(_Strict):
    """EfficientNet's compound scaling (Tan & Le 2019, eq. 3): step 1 searches alpha, beta, gamma
    at phi = 1; each candidate is the network nearest `flops_ratio` times the base's analysed
    FLOPs among the integer choices around its multipliers (archspec.search.budget.fit_flops), kept
    when within `tolerance` of it and when its effective alpha * beta^2 * gamma^2 is within
    `product_tolerance` of `flops_ratio`. Step 2 fits phi = 2..`phi` to flops_ratio^phi."""

    flops_ratio: Annotated[float, Field(gt=1, le=16)] = 2.0
    tolerance: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.05, description="band on the analysed FLOPs ratio, relative (0.05: +-5%)"
    )
    product_tolerance: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.25, description="band on the effective depth * width^2 * resolution^2, relative"
    )
    depth_rule: Literal["spread", "ceil"] = Field(
        "spread",
        description="spread: the total repeats rounded and spread over stages (timm); "
        "ceil: each stage rounded up (torchvision)",
    )
    phi: Annotated[int, Field(ge=1, le=8)] = 3


class Evaluation(_Strict):
    """After the trials: the `top_k` best distinct networks, the base and the compound family
    retrained with `seeds` fresh seeds each, scored on validation and the held-out test split
    (0 seeds: off)."""

    top_k: Annotated[int, Field(ge=1, le=100)] = 3
    seeds: Annotated[int, Field(ge=0, le=100)] = 3
    processes: Annotated[int, Field(ge=1, le=256)] | None = Field(
        None,
        description="trainings run side by side (default: on CPU, as many as the cores hold "
        "at the search's thread count; on an accelerator, 1)",
    )


class Objective(_Strict):
    metric: Metric
    direction: Literal["maximize", "minimize"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"metric": value} if isinstance(value, str) else value

    @property
    def resolved_direction(self) -> str:
        if self.direction is not None:
            return self.direction
        return "maximize" if self.metric in MAXIMIZED else "minimize"


class Reward(_Strict):
    """MnasNet's reward (Tan et al. 2019, eq. 2): ACC * (value / target) ^ w, with w = `weight`
    at or below the target and `weight_above` over it (MnasNet: -0.07 and -0.07 soft, 0 and -1
    hard)."""

    metric: Literal["latency_ms", "flops", "params"] = "latency_ms"
    target: Annotated[float, Field(gt=0)]
    weight: Annotated[float, Field(ge=-10, le=0)] = -0.07
    weight_above: Annotated[float, Field(ge=-10, le=0)] | None = None


class Constraints(_Strict):
    """Hard limits. Params and FLOPs are checked from the analysis before a candidate is built;
    latency after it is built, before it is trained. FLOPs = 2 x MACs."""

    max_params: Annotated[int, Field(ge=1)] | None = None
    max_flops: Annotated[float, Field(gt=0)] | None = None
    max_latency_ms: Annotated[float, Field(gt=0)] | None = None


class Latency(_Strict):
    """How latency is measured: median of `repeats` batch-1 forwards after `warmup` ones."""

    warmup: Annotated[int, Field(ge=0, le=1000)] = 5
    repeats: Annotated[int, Field(ge=1, le=10_000)] = 30


def _one_of(value: str, table: dict) -> str:
    if value not in table:
        names = [repr(name) for name in table]
        raise ValueError(f"input should be {', '.join(names[:-1])} or {names[-1]}")
    return value


class Sampler(_Strict):
    """An entry of archspec.search.definition.samplers.SAMPLERS, with its settings."""

    name: str = "tpe"
    n_startup_trials: Annotated[int, Field(ge=0, le=10_000)] | None = None
    population_size: Annotated[int, Field(ge=2, le=10_000)] | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        from archspec.search.definition.samplers import SAMPLERS

        return _one_of(value, SAMPLERS)


class Pruner(_Strict):
    """An entry of archspec.search.definition.samplers.PRUNERS, with its settings."""

    name: str = "none"
    n_startup_trials: Annotated[int, Field(ge=0, le=10_000)] = 3
    n_warmup_steps: Annotated[int, Field(ge=0, le=10_000)] = 1

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        from archspec.search.definition.samplers import PRUNERS

        return _one_of(value, PRUNERS)


class Heartbeat(_Strict):
    """Dead-worker detection (Optuna's heartbeat): a running trial records a heartbeat every
    `interval` seconds; one silent for `grace_period` seconds (its worker was killed, lost
    power or its machine) is failed and retried with the same parameters by any worker, at
    most `max_retry` times."""

    interval: Annotated[int, Field(ge=1, le=3600)] = 10
    grace_period: Annotated[int, Field(ge=2, le=86_400)] = 60
    max_retry: Annotated[int, Field(ge=0, le=100)] = 3

    @model_validator(mode="after")
    def _longer(self) -> Heartbeat:
        if self.grace_period <= self.interval:
            raise ValueError(
                f"grace_period ({self.grace_period}) must exceed interval ({self.interval})"
            )
        return self


class SearchDef(_Strict):
    """A whole search: what to scale, how to train and judge candidates, how Optuna searches."""

    study: Name
    description: str | None = None
    base: str = Field(description="a spec file (relative to this file) or a zoo name")
    mode: Literal["compound", "free"]
    space: Space = Field(default_factory=Space)
    compound: Compound = Field(default_factory=Compound)
    data: Data = Field(default_factory=Data)
    training: Training = Field(default_factory=Training)
    objectives: Annotated[list[Objective], Field(min_length=1, max_length=4)] = Field(
        default_factory=lambda: [Objective(metric="accuracy")]
    )
    reward: Reward | None = None
    constraints: Constraints = Field(default_factory=Constraints)
    latency: Latency = Field(default_factory=Latency)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    sampler: Sampler = Field(default_factory=Sampler)
    pruner: Pruner = Field(default_factory=Pruner)
    trials: Annotated[int, Field(ge=1, le=100_000)] = 20
    timeout: Annotated[float, Field(gt=0)] | None = Field(None, description="seconds")
    storage: str | None = Field(
        None,
        description="Optuna storage: an SQLAlchemy URL (sqlite:///, postgresql://, mysql://) or "
        "a JournalStorage file path; default sqlite:///runs/<study>.db",
    )
    heartbeat: Heartbeat = Field(default_factory=Heartbeat)
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    export: str | None = Field(None, description="where the best spec goes; default runs/")

    _file: str = PrivateAttr("<search>")
    _overrides: tuple[str, ...] = PrivateAttr(())  # KEY=VALUE given on the command line
    _base_spec: Spec | None = PrivateAttr(None)

    @field_validator("sampler", "pruner", mode="before")
    @classmethod
    def _name_shorthand(cls, value: Any) -> Any:
        return _named(value)

    @property
    def file(self) -> str:
        return self._file

    @property
    def overrides(self) -> tuple[str, ...]:
        return self._overrides

    @property
    def base_spec(self) -> Spec:
        assert self._base_spec is not None, "load_search() sets the base spec"
        return self._base_spec

    @property
    def directions(self) -> list[str]:
        return [o.resolved_direction for o in self.objectives]

    @property
    def metrics(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def storage_url(self) -> str:
        return self.storage or default_storage(self.study)

    @property
    def export_path(self) -> Path:
        return Path(self.export or f"runs/{self.study}_best.yaml")


def default_storage(study: str) -> str:
    return f"sqlite:///runs/{study}.db"
