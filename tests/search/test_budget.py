"""Effective scaling (what the built network has) and fitting a FLOPs budget; the depth rules."""

import math

import pytest

import archspec
from archspec.analysis import analyze
from archspec.errors import ScaleError
from archspec.scaling.measured import Effective, effective
from archspec.scaling.rewrite import repeat_literals, scale
from archspec.scaling.rules import scale_depth
from archspec.search.budget import fit_flops
from archspec.search.trial import effective_record

PLAIN = """\
name: plain
input: {channels: 1, size: 8, size_multiple: 2}
scaling: {divisor: 4}
options:
  num_classes: {type: int, default: 10}
blocks:
  conv:
    params: {out_channels: channels}
    layers:
      - {op: conv2d, out_channels: $out_channels, kernel_size: 3, padding: 1}
layers:
  - {op: conv2d, name: conv1, out_channels: 8, kernel_size: 3, padding: 1}
  - {block: conv, name: stage, repeat: 2, args: {out_channels: 16}}
  - {op: adaptive_avgpool}
  - {op: flatten}
  - {op: linear, name: fc, out_features: $num_classes}
"""

# One conv whose MACs are proportional to its channels: FLOPs ratios are exact fractions.
LINEAR = """\
name: linear_in_width
input: {channels: 1, size: 8, size_multiple: 2}
scaling: {divisor: 4}
layers:
  - {op: conv2d, name: conv, out_channels: 16, kernel_size: 3, padding: 1}
  - {op: adaptive_avgpool}
  - {op: flatten}
"""


@pytest.fixture(scope="module")
def plain():
    return archspec.load_spec(PLAIN)


@pytest.fixture(scope="module")
def demo():
    return archspec.load_spec("search/bases/shapes_resnet.yaml")


@pytest.mark.parametrize(
    ("repeats", "depth", "rule", "expected"),
    [
        ([1, 2, 2, 2], 1.2, "ceil", [2, 3, 3, 3]),
        ([1, 2, 2, 2], 1.2, "spread", [1, 2, 2, 3]),  # 8.4 -> 8 blocks: the extra one last
        ([1, 2, 2, 2], 1.5, "spread", [2, 3, 3, 3]),  # 10.5 -> 11: largest remainder first
        ([1, 2, 2, 2], 2.0, "spread", [2, 4, 4, 4]),
        ([1, 2, 2, 2], 3.0, "spread", [3, 6, 6, 6]),
        ([1, 2, 2, 2], 0.5, "spread", [1, 1, 1, 1]),  # never below one block per stage
        ([1, 1, 10], 0.2, "spread", [1, 1, 1]),
        ([2, 3, 4], 1.0, "spread", [2, 3, 4]),
    ],
)
def test_depth_rules(repeats, depth, rule, expected):
    assert scale_depth(repeats, depth, rule) == expected


def test_spread_moves_one_block_at_a_time():
    repeats = [1, 2, 3, 4]
    totals = [sum(scale_depth(repeats, d / 100, "spread")) for d in range(100, 301)]
    assert sorted(set(totals)) == list(range(10, 31))  # every total from 10 to 30 blocks


def test_scale_depth_rule_in_specs(plain):
    assert repeat_literals(scale(plain, depth=1.2)) == [3]  # ceil stays the default
    assert repeat_literals(scale(plain, depth=1.2, depth_rule="spread")) == [2]
    with pytest.raises(ScaleError, match="unknown depth rule 'round'"):
        scale(plain, depth=1.2, depth_rule="round")


def test_effective_values_are_exact(plain):
    scaled = scale(plain, width=1.5, depth=1.5, resolution=1.5)
    eff = effective(plain, scaled)
    eff_stored, metrics = effective_record(plain, scaled)  # what a trial stores
    assert eff_stored == eff
    # conv1 8 -> 12, stage 16 -> 24 (ratio 1.5), fc stays 10: weighted by the base's MACs
    macs = {"conv1": 8 * 9 * 64, "stage.0": 16 * 8 * 9 * 64, "stage.1": 16 * 16 * 9 * 64}
    fc = 16 * 10
    assert eff.width == pytest.approx((1.5 * sum(macs.values()) + fc) / (sum(macs.values()) + fc))
    assert eff.depth == 1.5  # repeat 2 -> 3
    assert eff.resolution == 1.5 and metrics.size == 12
    assert metrics.flops == analyze(scaled).flops and metrics.params == analyze(scaled).params
    assert eff.flops_ratio == analyze(scaled).flops / analyze(plain).flops
    assert eff.product == pytest.approx(eff.depth * eff.width**2 * eff.resolution**2)


def test_effective_of_the_base_is_one(plain):
    eff = effective(plain, plain)
    assert (eff.depth, eff.width, eff.resolution, eff.flops_ratio) == (1.0, 1.0, 1.0, 1.0)


def test_nominal_and_effective_width_differ():
    tiny = archspec.load_spec("search/bases/tiny_effnet.yaml")
    scaled = scale(tiny, width=1.25, resolution=1.2)
    eff = effective(tiny, scaled)
    # gamma 1.2 is 1.167
    assert scaled.input.hw[0] == 14 and eff.resolution == pytest.approx(14 / 12)
    assert 1.25 < eff.width < 1.5  # 8/16/24/32/64 -> 12/20/32/40/80


def test_effective_refuses_an_unrelated_spec(plain):
    other = archspec.load_spec(PLAIN.replace("repeat: 2, ", "").replace("name: stage,", ""))
    with pytest.raises(ScaleError, match="not a rescaling of plain"):
        effective(plain, other)


def test_fit_picks_the_neighbouring_channel_count():
    base = archspec.load_spec(LINEAR)
    # nominal width 1.3: 16 -> 20 (1.25x); the next multiple of 4, 24, is exactly 1.5x
    spec, eff = fit_flops(base, 1.5, width=1.3)
    assert analyze(spec).nodes["conv"].shape.channels == 24
    assert eff.flops_ratio == 1.5 and eff.width == 1.5
    assert (eff.depth, eff.resolution) == (1.0, 1.0)  # axes at 1 never move


def test_fit_moves_only_the_scaled_axes(plain):
    spec, eff = fit_flops(plain, 4.0, resolution=2.0)
    assert eff.width == 1.0 and eff.depth == 1.0
    assert spec.input.size == 16
    spec, eff = fit_flops(plain, 2.0, depth=2.0)
    assert repeat_literals(spec) == [4] and eff.resolution == 1.0 and eff.width == 1.0


def test_fit_returns_the_nearest_outside_the_band(plain):
    # depth alone on one stage of 2 repeats: 2x FLOPs needs ~4.2 repeats; 4 is nearest
    spec, eff = fit_flops(plain, 2.2, depth=2.0, tolerance=0.01)
    assert repeat_literals(spec) == [4]
    assert abs(eff.flops_ratio / 2.2 - 1) > 0.01


def test_alpha_1_2_is_reachable_on_the_demo_base(demo):
    spread = effective(demo, scale(demo, depth=1.2, depth_rule="spread"))
    ceil = effective(demo, scale(demo, depth=1.2))
    assert repeat_literals(demo) == [2, 3, 3]
    assert spread.depth == 1.25  # 8 blocks -> 10 (9.6 rounded): 2/4/4
    assert ceil.depth == 11 / 8  # a block added to each of the 3 stages: 3/4/4
    assert 1.1 < spread.flops_ratio < 1.3


FAMILIES = ["compound", "width", "depth", "resolution"]


# resolution alone cannot make 8x on a 16 px base: 44 px is 7.56x, 46 px 8.53x
@pytest.mark.parametrize(
    ("target", "family"),
    [(t, f) for t in (1.5, 2.0, 3.0, 4.0, 8.0) for f in FAMILIES if (t, f) != (8.0, "resolution")],
)
def test_fit_lands_within_five_percent(demo, target, family):
    if family == "compound":  # alpha, beta, gamma = 1.2, 1.1, 1.15 raised to phi
        phi = math.log(target) / math.log(1.2 * 1.1**2 * 1.15**2)
        knobs = {"depth": 1.2**phi, "width": 1.1**phi, "resolution": 1.15**phi}
    elif family == "width":
        knobs = {"width": target**0.5}
    elif family == "resolution":
        knobs = {"resolution": target**0.5}
    else:
        knobs = {"depth": target}
    _, eff = fit_flops(demo, target, **knobs)
    assert isinstance(eff, Effective)
    assert abs(eff.flops_ratio / target - 1) <= 0.05, eff


@pytest.mark.slow
def test_the_band_lists_every_distinct_network_in_it_once():
    """band_networks bisects the depth ladder; a brute-force pass over every combination of the
    same integer choices finds the same networks."""
    import itertools
    from pathlib import Path

    from archspec.search.budget import _outcomes, band_networks
    from archspec.search.definition.space import reference_spec
    from archspec.spec import load_spec
    from archspec.spec.dump import dump_spec

    bases = Path(__file__).resolve().parents[2] / "search" / "bases"
    base = reference_spec(load_spec(bases / "tiny_effnet.yaml"), 10)
    ranges = {"width": (1.0, 1.3), "depth": (1.0, 2.0), "resolution": (1.0, 1.3)}
    band = band_networks(base, 2.0, **ranges, tolerance=0.05, product_tolerance=0.25)
    assert band and len({dump_spec(n.spec) for n in band}) == len(band)
    assert len({n.label for n in band}) == len(band)
    for n in band:
        assert abs(n.effective.flops_ratio / 2 - 1) <= 0.05
        assert abs(n.effective.product / 2 - 1) <= 0.25
    found = set()
    flops = analyze(base).flops
    widths, depths, sizes = (
        _outcomes(*ranges[k], lambda m, k=k: dump_spec(scale(base, **{k: m}, depth_rule="spread")))
        for k in ("width", "depth", "resolution")
    )
    for w, d, r in itertools.product(widths, depths, sizes):
        spec = scale(base, width=w, depth=d, resolution=r, depth_rule="spread")
        eff = effective(base, spec)
        if abs(analyze(spec).flops / flops / 2 - 1) <= 0.05 and abs(eff.product / 2 - 1) <= 0.25:
            found.add(dump_spec(spec))
    assert found == {dump_spec(n.spec) for n in band}
