"""What a scaled network actually has, relative to its base: effective depth, width, resolution
and FLOPs ratio, the one record that trials store and the budget fit reports.

Rounding makes multipliers nominal: on a small base, width 1.25 turns channels 8/16/24 into
12/20/32 and resolution 1.2 turns 12 px into 14. What the network has:

- depth: its total literal repeats over the base's (1.0 when the spec has no repeats);
- width: the FLOPs-weighted channel ratio: sum_n F_n * c'_n / c_n over sum_n F_n, where n runs
  over the base's nodes, F_n is node n's FLOPs in the base, c_n its output channels and c'_n
  that node's output channels in the base rebuilt with the scaled network's channel counts
  (same repeats and input size as the base, so the nodes correspond one to one);
- resolution: input side over the base's (the geometric mean of height and width ratios);
- flops_ratio: the analysed FLOPs over the base's analysed FLOPs.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from archspec.analysis import CostReport, analyze
from archspec.errors import ArchspecError, ScaleError
from archspec.scaling.rewrite import repeat_items, repeat_literals
from archspec.spec.dump import spec_data
from archspec.spec.load import spec_from_source
from archspec.spec.model import Spec
from archspec.spec.yamlsource import Source


class Effective(BaseModel):
    """What the built network actually has, relative to the base."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    depth: float  # total repeats / base's total repeats
    width: float  # FLOPs-weighted channel ratio (see the module docstring)
    resolution: float  # input pixels (side) / base's
    flops_ratio: float  # analysed FLOPs / base's analysed FLOPs

    @property
    def product(self) -> float:
        """EfficientNet's depth * width^2 * resolution^2 on the effective values."""
        return self.depth * self.width**2 * self.resolution**2


def effective(base: Spec, scaled: Spec, cost: CostReport | None = None) -> Effective:
    """The effective multipliers of `scaled` (a rescaling of `base`, e.g. by `scale`); `cost`
    is `scaled`'s analysis when the caller has it already."""
    base_cost, cost = analyze(base), cost or analyze(scaled)
    base_repeats, repeats = sum(repeat_literals(base)), sum(repeat_literals(scaled))
    (h0, w0), (h, w) = base.input.hw, scaled.input.hw
    return Effective(
        depth=repeats / base_repeats if base_repeats else 1.0,
        width=_width(base, scaled, base_cost),
        resolution=math.sqrt(h * w / (h0 * w0)),
        flops_ratio=cost.flops / base_cost.flops if base_cost.flops else math.inf,
    )


def _width(base: Spec, scaled: Spec, base_cost: Any) -> float:
    rebuilt = analyze(_channels_only(base, scaled))
    total = weighted = 0.0
    for name, node in base_cost.nodes.items():
        other = rebuilt.nodes.get(name)
        if node.macs == 0 or other is None or node.shape.channels == 0:
            continue
        total += node.macs
        weighted += node.macs * other.shape.channels / node.shape.channels
    return weighted / total if total else 1.0


def _channels_only(base: Spec, scaled: Spec) -> Spec:
    """`scaled`'s channel counts on `base`'s repeats, input size and non-channel options."""
    data, reference = copy.deepcopy(spec_data(scaled)), spec_data(base)
    ours, theirs = repeat_items(data), repeat_items(reference)
    if len(ours) != len(theirs):
        raise ScaleError(
            f"{scaled.name} is not a rescaling of {base.name}: {len(ours)} repeated items "
            f"against {len(theirs)}"
        )
    for item, ref in zip(ours, theirs, strict=True):
        item["repeat"] = ref["repeat"]
    data["input"] = copy.deepcopy(reference["input"])
    for name, option in reference.get("options", {}).items():
        if option.get("type") != "channels" and name in data.get("options", {}):
            data["options"][name] = copy.deepcopy(option)
    source = scaled._source or Source(None, f"<{scaled.name}>")
    try:
        return spec_from_source(Source(data, source.file, source.values, source.keys))
    except ArchspecError as exc:
        raise ScaleError(f"{scaled.name} is not a rescaling of {base.name}: {exc}") from exc
