"""Search definitions (`search/*.yaml`): pydantic models, validated with located errors.

A definition names a base spec, the knobs to search (depth, width and resolution multipliers,
kernel choices per named stage), the data and training budget, the objectives and constraints,
the Optuna sampler, pruner and storage. Checks that need the base spec (stage names, class
count) run here too, so a bad definition fails before any trial.
"""

from __future__ import annotations

import math
import re
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

from archspec.errors import Problem, ScaleError, SearchError, SpecError
from archspec.spec.load import load_spec, validate_source
from archspec.spec.model import Multiplier, Name, PositiveInt, Spec
from archspec.spec.yamlsource import PathKey, Source, load_yaml, read_text

Metric = Literal["accuracy", "params", "flops", "latency_ms", "reward"]
MAXIMIZED = {"accuracy", "reward"}
DATASET = re.compile(r"^(digits|shapes|synthetic|imagefolder:.+|torchvision:[A-Za-z0-9_]+)$")
# torchvision datasets with .data and .targets and a train split, and their class counts
TORCHVISION_CLASSES = {
    "MNIST": 10, "FashionMNIST": 10, "KMNIST": 10, "QMNIST": 10, "CIFAR10": 10, "CIFAR100": 100,
}  # fmt: skip
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
    FLOPs among the integer choices around its multipliers (archspec.budget.fit_flops), kept
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


class Data(_Strict):
    """`digits` (scikit-learn's bundled 8x8 digits, offline), `shapes` (procedural, 64x64, 32
    classes: archspec/search/shapes.py), `synthetic`, `imagefolder:PATH`
    (PATH/<class>/<image>, relative to the current folder) or `torchvision:NAME` (MNIST,
    CIFAR10, ...: downloads only with `download: true`)."""

    dataset: str = "digits"
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.2, description="held out for the final re-evaluation; never used to select"
    )
    limit: PositiveInt | None = Field(None, description="use at most this many samples")
    num_samples: PositiveInt = Field(2000, description="synthetic, shapes: number of images")
    num_classes: Annotated[int, Field(ge=2, le=1000)] = Field(10, description="synthetic only")
    image_size: Annotated[int, Field(ge=1, le=4096)] = Field(
        64, description="imagefolder: images are loaded at this size"
    )
    root: str = Field("data", description="torchvision: where the dataset lives")
    download: bool = False

    @field_validator("dataset")
    @classmethod
    def _known(cls, value: str) -> str:
        if not DATASET.match(value):
            raise ValueError(
                "dataset is one of digits, shapes, synthetic, imagefolder:PATH, torchvision:NAME"
            )
        name = value.partition(":")[2]
        if value.startswith("torchvision:") and name not in TORCHVISION_CLASSES:
            raise ValueError(
                f"torchvision:{name} is not supported; use one of "
                + ", ".join(f"torchvision:{n}" for n in TORCHVISION_CLASSES)
            )
        return value

    @property
    def known_size(self) -> tuple[int, int] | None:
        """(samples, classes) when known before loading: digits, shapes, synthetic,
        torchvision."""
        if self.dataset == "digits":
            samples, classes = 1797, 10
        elif self.dataset == "shapes":
            from archspec.search.shapes import NUM_CLASSES

            samples, classes = self.num_samples, NUM_CLASSES
        elif self.dataset == "synthetic":
            samples, classes = self.num_samples, self.num_classes
        elif self.dataset.startswith("torchvision:"):
            samples, classes = 10**9, TORCHVISION_CLASSES[self.dataset.partition(":")[2]]
        else:
            return None
        return min(samples, self.limit or samples), classes

    @model_validator(mode="after")
    def _fractions(self) -> Data:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                f"val_fraction + test_fraction is {self.val_fraction + self.test_fraction:g}; "
                "leave at least 10% for training"
            )
        return self


class Training(_Strict):
    """The budget of one candidate: same for every trial, so results compare."""

    epochs: Annotated[int, Field(ge=1, le=10_000)] = 10
    batch_size: Annotated[int, Field(ge=1, le=65_536)] = 128
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: Annotated[float, Field(gt=0, le=10)] = 3e-3
    weight_decay: Annotated[float, Field(ge=0, le=10)] = 0.05
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    warmup_epochs: Annotated[int, Field(ge=0, le=1000)] = 0
    precise_bn: Annotated[int, Field(ge=0, le=1 << 20)] = Field(
        1024,
        description="re-estimate BatchNorm statistics on this many training images "
        "before each validation (0: off)",
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    threads: Annotated[int, Field(ge=1, le=1024)] | None = Field(
        None, description="CPU threads for the search (default: torch's, one per core)"
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
    """An entry of archspec.search.samplers.SAMPLERS, with its settings."""

    name: str = "tpe"
    n_startup_trials: Annotated[int, Field(ge=0, le=10_000)] | None = None
    population_size: Annotated[int, Field(ge=2, le=10_000)] | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        from archspec.search.samplers import SAMPLERS

        return _one_of(value, SAMPLERS)


class Pruner(_Strict):
    """An entry of archspec.search.samplers.PRUNERS, with its settings."""

    name: str = "none"
    n_startup_trials: Annotated[int, Field(ge=0, le=10_000)] = 3
    n_warmup_steps: Annotated[int, Field(ge=0, le=10_000)] = 1

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        from archspec.search.samplers import PRUNERS

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
    _base_spec: Spec | None = PrivateAttr(None)

    @field_validator("sampler", "pruner", mode="before")
    @classmethod
    def _name_shorthand(cls, value: Any) -> Any:
        return _named(value)

    @property
    def file(self) -> str:
        return self._file

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


def definition_path(name_or_path: str | Path) -> Path:
    """A definition file, or the name of a shipped one (`digits_compound`)."""
    from archspec.zoo import find_file, search_dir

    return find_file(name_or_path, search_dir(), "search definition", SearchError)


def load_search(source: str | Path) -> SearchDef:
    """Read and validate a search definition (a path, or a shipped definition's name); every
    problem located at file:line:col."""
    if isinstance(source, Path) or "\n" not in source:
        source = definition_path(source)
    text, file = read_text(source)
    data = load_yaml(text, file)
    defn = validate_source(
        data, SearchDef, SearchError, "a search definition is a mapping with study, base and mode"
    )
    defn._file = file
    problems = list(_semantic_problems(defn, data))
    if problems:
        raise SearchError(problems)
    defn._base_spec = _load_base(defn, data)
    problems = list(_base_problems(defn, data))
    if problems:
        raise SearchError(problems)
    return defn


def _semantic_problems(defn: SearchDef, src: Source):
    def at(path: PathKey, message: str, key: bool = False) -> Problem:
        return Problem(src.locate(path, key), message)

    multi = len(defn.objectives) > 1
    metrics = defn.metrics
    yield from _data_problems(defn, at)
    if len(set(metrics)) != len(metrics):
        yield at(("objectives",), "objectives: each metric may appear once")
    if "reward" in metrics and defn.reward is None:
        yield at(("objectives",), "objectives: the reward metric needs a `reward:` section")
    if defn.mode == "compound":
        if multi or metrics[0] not in ("accuracy", "reward"):
            yield at(
                ("objectives",),
                "objectives: compound mode maximizes one of accuracy or reward at phi=1",
            )
        for knob in ("depth", "width", "resolution"):
            if getattr(defn.space, knob) is None:
                yield at(("space",), f"space.{knob}: compound mode needs a range for {knob}")
    elif not any([defn.space.depth, defn.space.width, defn.space.resolution, defn.space.kernels]):
        yield at(("space",), "space: nothing to search; give depth, width, resolution or kernels")
    from archspec.search.samplers import PRUNERS, SAMPLERS

    sampler = SAMPLERS[defn.sampler.name]
    if PRUNERS[defn.pruner.name].prunes and multi:
        yield at(
            ("pruner",),
            f"pruner: {defn.pruner.name} needs a single objective (Optuna cannot prune "
            "multi-objective trials); use pruner: none",
        )
    if not sampler.multi_objective and multi:
        yield at(
            ("sampler",),
            f"sampler: {defn.sampler.name} optimizes one objective; use nsga2 or tpe",
        )
    if sampler.needs_steps:
        # compound mode solves alpha (depth): only beta and gamma are sampled
        knobs = (
            ("width", "resolution") if defn.mode == "compound" else ("depth", "width", "resolution")
        )
        for knob in knobs:
            rng = getattr(defn.space, knob)
            if rng is not None and rng.step is None:
                yield at(
                    ("space", knob),
                    f"space.{knob}: the {defn.sampler.name} sampler needs a step",
                )


def _data_problems(defn: SearchDef, at: Any):
    data = defn.data
    known = data.known_size
    if known is not None:
        samples, classes = known
        train = 1 - data.val_fraction - data.test_fraction
        smallest = min(data.val_fraction, data.test_fraction, train)
        # every split of a stratified split holds each class at least once
        need = math.ceil(classes / smallest - 1e-9)
        if samples < need:
            where = ("data", "limit") if data.limit is not None else ("data", "num_samples")
            yield at(
                where,
                f"{'.'.join(where)}: {samples} samples cannot be split into train, validation "
                f"and test with each of the {classes} classes in every part (the smallest part "
                f"is {smallest:g} of the data); use at least {need}",
            )
    sampler = defn.sampler.name
    from archspec.search.samplers import SAMPLERS

    if SAMPLERS[sampler].needs_steps:
        space = defn.space
        knobs = [space.depth, space.width, space.resolution][defn.mode == "compound" :]
        points = math.prod(r.values for r in knobs if r and r.step and r.low != r.high)
        points *= math.prod(len(choices) for choices in space.kernels.values())
        if points > MAX_GRID_POINTS:
            yield at(
                ("space",),
                f"space: the grid has {_count(points)} points; the grid sampler enumerates at most "
                f"{MAX_GRID_POINTS:,} (use larger steps or fewer kernel choices)",
            )


def _load_base(defn: SearchDef, src: Source) -> Spec:
    from archspec.zoo import spec_path

    base = defn.base
    if base.endswith((".yaml", ".yml")):
        path = Path(defn.file).parent / base if defn.file != "<search>" else Path(base)
        if not path.exists():
            raise SearchError(f"base: no spec file {str(path)!r}", src.locate(("base",)))
        return load_spec(path)
    try:
        path = spec_path(base)
    except SpecError as exc:
        raise SearchError(f"base: {exc.message}", src.locate(("base",))) from exc
    return load_spec(path)


def _base_problems(defn: SearchDef, src: Source):
    from archspec.scale import scale

    spec = defn.base_spec
    for stage, choices in defn.space.kernels.items():
        try:
            scale(spec, kernels={stage: choices[0]})
        except ScaleError as exc:
            yield Problem(
                src.locate(("space", "kernels", stage), key=True), f"space.kernels: {exc.message}"
            )
    if spec.input.channels not in (1, 3) and defn.data.dataset != "synthetic":
        yield Problem(
            src.locate(("base",)),
            f"base: input.channels is {spec.input.channels}; image datasets give 1 or 3",
        )
