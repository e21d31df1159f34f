"""The network nearest a FLOPs budget among the integer choices around nominal multipliers
(compound scaling's step 1 builds it; archspec.scaling.measured says what it has)."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from archspec.analysis import CostReport, analyze
from archspec.errors import ArchspecError, ScaleError
from archspec.scaling.measured import Effective, effective
from archspec.scaling.rewrite import channel_literals, repeat_literals, scale
from archspec.scaling.rules import DepthRule, make_divisible, scale_depth, scale_size
from archspec.spec.model import Spec

# fit_flops analyses at most this many networks (a few ms each for small specs).
MAX_EVALUATIONS = 200
# Multipliers scanned for distinct integer choices: nominal * f, f in [1/SPAN, SPAN].
SPAN = 2.0
STEP = 1.002


# --- fitting a FLOPs budget ----------------------------------------------------------------


@dataclass(frozen=True)
class _Axis:
    """The distinct integer outcomes of one multiplier near its nominal value, in increasing
    order, each with the multiplier nearest the nominal that produces it."""

    multipliers: tuple[float, ...]
    nominal: int  # index of the nominal multiplier's outcome


def _axis(nominal: float, outcome: Callable[[float], Hashable]) -> _Axis:
    if nominal == 1.0:
        return _Axis((1.0,), 0)
    here = outcome(nominal)
    below: list[float] = []
    above: list[float] = []
    for side, factor in ((below, 1 / STEP), (above, STEP)):
        last, m = here, nominal
        for _ in range(int(math.log(SPAN) / math.log(STEP))):
            m *= factor
            if not 0 < m <= 16:
                break
            value = outcome(m)
            if value != last:
                side.append(m)
                last = value
    return _Axis((*reversed(below), nominal, *above), len(below))


def fit_flops(
    base: Spec,
    target_ratio: float,
    *,
    width: float = 1.0,
    depth: float = 1.0,
    resolution: float = 1.0,
    kernels: dict[str, int] | None = None,
    tolerance: float = 0.05,
    depth_rule: DepthRule = "spread",
) -> tuple[Spec, Effective]:
    """The network nearest `target_ratio` times the base's FLOPs among the neighbouring integer
    choices of the nominal multipliers: channel counts (multiples of the divisor), repeats
    (by `depth_rule`) and input sizes (multiples of `input.size_multiple`). Only axes whose
    multiplier is not 1 move. First every combination within one choice of the nominal on
    each moving axis: of those within `tolerance`, the one nearest the nominal multipliers
    (so that a compound step keeps its proportions), else the nearest to the target; while
    that is outside `tolerance`, a walk one choice at a time on the axis that brings it
    nearest (at most MAX_EVALUATIONS analyses). Returns the nearest even when it is outside
    the tolerance: the caller checks the band with `Effective.flops_ratio`.
    """
    if not (isinstance(target_ratio, (int, float)) and target_ratio > 0):
        raise ScaleError(f"target FLOPs ratio must be positive; got {target_ratio!r}")
    divisor = base.scaling.divisor
    channels = sorted(set(channel_literals(base)))
    repeats = repeat_literals(base)
    hw, multiple = base.input.hw, base.input.size_multiple
    axes = (
        _axis(width, lambda m: tuple(make_divisible(c * m, divisor) for c in channels)),
        _axis(depth, lambda m: tuple(scale_depth(repeats, m, depth_rule))),
        _axis(resolution, lambda m: scale_size(hw, m, multiple)),
    )
    base_flops = analyze(base).flops
    specs: dict[tuple[int, int, int], Spec] = {}
    ratios: dict[tuple[int, int, int], float] = {}

    def ratio(index: tuple[int, int, int]) -> float:
        if index not in ratios:
            w, d, r = (axis.multipliers[i] for axis, i in zip(axes, index, strict=True))
            try:
                spec = scale(
                    base, width=w, depth=d, resolution=r, kernels=kernels, depth_rule=depth_rule
                )
                ratios[index] = analyze(spec).flops / base_flops
                specs[index] = spec
            except ArchspecError:  # e.g. an input too small for the strides: not a choice
                ratios[index] = math.inf
        return ratios[index]

    def miss(index: tuple[int, int, int]) -> tuple[float, int]:
        distance = sum(abs(i - a.nominal) for i, a in zip(index, axes, strict=True))
        return round(abs(ratio(index) / target_ratio - 1), 12), distance

    def rounding(index: tuple[int, int, int]) -> tuple[float, float, tuple[float, int]]:
        """Inside the band, the choice nearest the nominal multipliers; outside, the nearest."""
        outside = max(0.0, miss(index)[0] - tolerance)
        moved = sum(
            abs(math.log(a.multipliers[i] / a.multipliers[a.nominal]))
            for i, a in zip(index, axes, strict=True)
        )
        return round(outside, 12), round(moved, 12), miss(index)

    # 1. the best rounding: every combination within one choice of the nominal
    ranges = [range(max(0, a.nominal - 1), min(len(a.multipliers), a.nominal + 2)) for a in axes]
    best = min(((i, j, k) for i in ranges[0] for j in ranges[1] for k in ranges[2]), key=rounding)
    # 2. where FLOPs do not follow the multipliers (a stem, a head, depthwise convs, strided
    # sizes), walk one choice at a time on one axis towards the target while that gets nearer
    while miss(best)[0] > tolerance and len(ratios) < MAX_EVALUATIONS:
        steps = [
            tuple(i + delta * (axis == moved) for axis, i in enumerate(best))
            for moved in range(3)
            for delta in (-1, 1)
        ]
        steps = [
            s
            for s in steps
            if all(0 <= i < len(a.multipliers) for i, a in zip(s, axes, strict=True))
        ]
        nearest = min(steps, key=miss, default=best)
        if miss(nearest) >= miss(best):
            break
        best = nearest
    if best not in specs:  # no neighbour builds: the nominal's own error says why
        scale(base, width=width, depth=depth, resolution=resolution, kernels=kernels)
        analyze(specs.get(best) or base)
        raise ScaleError(f"no network near width {width}, depth {depth}, resolution {resolution}")
    return specs[best], effective(base, specs[best])


# --- every network of a FLOPs band ---------------------------------------------------------

# band_networks analyses at most this many combinations (a few ms each for small specs):
# beyond it the band is not enumerated and the search samples multipliers instead
MAX_ENUMERATED = 800


@dataclass(frozen=True)
class BandNetwork:
    """One distinct network of a FLOPs band: the multipliers that build it, and what it has."""

    label: str  # what a sampler chooses: input size, effective depth and width, kernels
    depth: float  # the multipliers given to `scale`
    width: float
    resolution: float
    kernels: tuple[tuple[str, int], ...]
    spec: Spec
    effective: Effective


def _outcomes(low: float, high: float, outcome: Callable[[float], Hashable]) -> list[float]:
    """One multiplier per distinct integer outcome of the multipliers in [low, high]: the
    lowest that produces it."""
    if low == high:
        return [low]
    found: list[float] = []
    last: Hashable = None
    m = low
    while m <= high * (1 + 1e-9):
        value = outcome(m)
        if value != last:
            found.append(m)
            last = value
        m = min(m * STEP, high) if m < high else high * 2  # land on `high` exactly, once
    return found


def band_networks(
    base: Spec,
    target_ratio: float,
    *,
    width: tuple[float, float] = (1.0, 1.0),
    depth: tuple[float, float] = (1.0, 1.0),
    resolution: tuple[float, float] = (1.0, 1.0),
    kernels: dict[str, list[int]] | None = None,
    tolerance: float = 0.05,
    product_tolerance: float = 0.25,
    depth_rule: DepthRule = "spread",
) -> list[BandNetwork] | None:
    """Every distinct network whose multipliers lie in the given (low, high) ranges, with its
    analysed FLOPs within `tolerance` of `target_ratio` times the base's and its effective
    depth * width^2 * resolution^2 within `product_tolerance` of it: the integer choices
    (channel multiples, repeats, input sizes, kernels) are few once rounded, so compound
    scaling's step 1 can choose among networks instead of among knobs that often build the
    same one. None when there are more than MAX_ENUMERATED combinations to analyse."""
    import itertools

    from archspec.search.study.records import spec_hash
    from archspec.spec.dump import dump_spec

    divisor = base.scaling.divisor
    channels = sorted(set(channel_literals(base)))
    repeats = repeat_literals(base)
    hw, multiple = base.input.hw, base.input.size_multiple
    widths = _outcomes(*width, lambda m: tuple(make_divisible(c * m, divisor) for c in channels))
    depths = _outcomes(*depth, lambda m: tuple(scale_depth(repeats, m, depth_rule)))
    sizes = _outcomes(*resolution, lambda m: scale_size(hw, m, multiple))
    stages = sorted((kernels or {}).items())
    choices = list(itertools.product(*(c for _, c in stages)))
    if len(widths) * len(depths) * len(sizes) * len(choices) > MAX_ENUMERATED:
        return None
    base_flops = analyze(base).flops
    low, high = target_ratio * (1 - tolerance), target_ratio * (1 + tolerance)
    found: dict[str, BandNetwork] = {}
    for w, r, ks in itertools.product(widths, sizes, choices):
        chosen = {stage: k for (stage, _), k in zip(stages, ks, strict=True)}
        built: dict[int, tuple[Spec, CostReport] | None] = {}

        def build(
            i: int, w: float = w, r: float = r, chosen: dict = chosen, built: dict = built
        ) -> tuple[Spec, CostReport] | None:
            if i not in built:
                try:
                    spec = scale(
                        base, width=w, depth=depths[i], resolution=r, kernels=chosen or None,
                        depth_rule=depth_rule,
                    )  # fmt: skip
                    built[i] = spec, analyze(spec)
                except ArchspecError:  # e.g. an input too small for the strides
                    built[i] = None
            return built[i]

        def ratio(i: int, build: Callable = build) -> float:
            made = build(i)
            return math.inf if made is None else made[1].flops / base_flops

        # FLOPs grow with the repeats: bisect for the first depth in the band, walk up
        lo, hi = 0, len(depths)
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if ratio(mid) < low else (lo, mid)
        for i in range(lo, len(depths)):
            if ratio(i) > high:
                break
            spec, cost = build(i)  # type: ignore[misc]  # finite ratio: it built
            eff = effective(base, spec, cost)
            if abs(eff.product / target_ratio - 1) > product_tolerance:
                continue
            digest = spec_hash(dump_spec(spec))
            if digest in found:
                continue
            label = f"{spec.input.hw[0]}px d{eff.depth:.3f} w{eff.width:.3f}" + "".join(
                f" {stage}:k{k}" for stage, k in chosen.items()
            )
            found[digest] = BandNetwork(label, depths[i], w, r, tuple(chosen.items()), spec, eff)
    networks = sorted(found.values(), key=lambda n: (n.effective.resolution, n.effective.width,
                                                     n.effective.depth, n.kernels))  # fmt: skip
    labels = [n.label for n in networks]
    return [
        n if labels.count(n.label) == 1 else _relabel(n, f"{n.label} #{i}")
        for i, n in enumerate(networks)
    ]


def _relabel(network: BandNetwork, label: str) -> BandNetwork:
    from dataclasses import replace

    return replace(network, label=label)
