"""The rounding rules of compound scaling (EfficientNet/MobileNet), shared by specs and search:
channels to a divisor, repeats by a depth rule, input sizes to a multiple."""

from __future__ import annotations

import math
from typing import Literal

DepthRule = Literal["ceil", "spread"]
DEPTH_RULES: tuple[str, ...] = ("ceil", "spread")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round `value` to a multiple of `divisor`, never below 90% of it (MobileNet's rule)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return int(rounded)


def scale_repeats(repeats: int, depth: float) -> int:
    """Repeats times the depth multiplier, rounded up."""
    return int(math.ceil(repeats * depth))


def scale_depth(repeats: list[int], depth: float, rule: DepthRule = "ceil") -> list[int]:
    """The repeat counts of a network's stages (in order) scaled by `depth`.

    "ceil" (torchvision, EfficientNet): each stage on its own, ceil(n * depth); any depth > 1
    adds a block to every stage. "spread" (the idea of timm's `_scale_stage_depth`, applied
    across stages): the total is rounded, max(stages, round(total * depth)), and shared out in
    proportion to the stages' repeats: each stage gets the floor of its share (at least 1), and
    the repeats left over go to the largest remainders, ties to the last stages first (the early
    stages run at high resolution, where a block costs most). Depth then moves one block at a
    time: on 12 repeats, depth 1.2 is 14 blocks, not 12 + one per stage.
    """
    if rule == "ceil":
        return [scale_repeats(n, depth) for n in repeats]
    if rule != "spread":
        raise ValueError(f"unknown depth rule {rule!r}; expected one of {', '.join(DEPTH_RULES)}")
    total = sum(repeats)
    if not repeats or depth == 1.0:
        return list(repeats)
    target = max(len(repeats), math.floor(total * depth + 0.5))
    shares = [n * target / total for n in repeats]
    counts = [max(1, math.floor(s)) for s in shares]
    # last stages first among equal remainders: sort by (remainder, index), largest first
    by_remainder = sorted(
        range(len(counts)), key=lambda i: (shares[i] - counts[i], i), reverse=True
    )
    i = 0
    while sum(counts) < target:
        counts[by_remainder[i % len(counts)]] += 1
        i += 1
    while sum(counts) > target:  # only when the floor of 1 lifted small shares
        over = max(
            (j for j in range(len(counts)) if counts[j] > 1),
            key=lambda j: (counts[j] - shares[j], -j),
        )
        counts[over] -= 1
    return counts


def scale_size(size: tuple[int, int], resolution: float, multiple: int) -> tuple[int, int]:
    """An input (height, width) times `resolution`, each rounded to the nearest `multiple`."""
    return tuple(  # type: ignore[return-value]
        max(multiple, multiple * math.floor(s * resolution / multiple + 0.5)) for s in size
    )
