"""Reading a search definition: YAML -> SearchDef with located errors, then the checks that need
the whole definition or its base spec, so a bad definition fails before any trial."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archspec.errors import Problem, ScaleError, SearchError, SpecError
from archspec.search.definition.model import MAX_GRID_POINTS, SearchDef, _count
from archspec.search.definition.space import largest_input
from archspec.spec.compose import apply_overrides, load_composed
from archspec.spec.load import load_spec, validate_source
from archspec.spec.model import Spec
from archspec.spec.yamlsource import PathKey, Source


def definition_path(name_or_path: str | Path) -> Path:
    """A definition file, or the name of a shipped one (`digits_compound`)."""
    from archspec.zoo import find_file, search_dir

    return find_file(name_or_path, search_dir(), "search definition", SearchError)


def load_search(source: str | Path, overrides: Sequence[str] = ()) -> SearchDef:
    """Read and validate a search definition (a path, or a shipped definition's name), with
    its `extends:` files merged in and `KEY=VALUE` overrides applied; every problem located
    at file:line:col, or at the override that wrote the value."""
    if isinstance(source, Path) or "\n" not in source:
        source = definition_path(source)
    data = apply_overrides(load_composed(source), overrides)
    file = data.file
    defn = validate_source(
        data, SearchDef, SearchError, "a search definition is a mapping with study, base and mode"
    )
    defn._file = file
    defn._overrides = tuple(overrides)
    problems = list(_semantic_problems(defn, data))
    if problems:
        raise SearchError(problems)
    defn._base_spec = _load_base(defn, data)
    problems = list(_base_problems(defn, data))
    if problems:
        raise SearchError(problems)
    # image folders and torchvision datasets: the image cache's size follows the search
    return defn.model_copy(update={"data": defn.data.at_load_size(largest_input(defn))})


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
    from archspec.search.definition.samplers import PRUNERS, SAMPLERS

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
    from archspec.search.definition.samplers import SAMPLERS

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
    from archspec.scaling.rewrite import scale

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
