"""The rounding rules of compound scaling (EfficientNet/MobileNet), shared by specs and search."""

from __future__ import annotations

import math


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
