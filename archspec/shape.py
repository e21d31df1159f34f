"""Static tensor shapes: the dims after the batch axis, with their layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Layout = Literal["CHW", "HWC", "LC", "C", "ND"]

LAYOUT_NAMES = {
    "CHW": "an image tensor (N,C,H,W)",
    "HWC": "a channels-last tensor (N,H,W,C)",
    "LC": "a token sequence (N,L,C)",
    "C": "a feature vector (N,C)",
    "ND": "a generic tensor (N,...)",
}


@dataclass(frozen=True)
class Shape:
    """`dims` excludes the batch axis: (C,H,W), (H,W,C), (L,C), (C,) or, in the generic layout
    ND (a reshape to 4-6 axes, attention heads, windows), any sizes whose last one is channels."""

    layout: Layout
    dims: tuple[int, ...]

    @property
    def channels(self) -> int:
        return self.dims[0] if self.layout == "CHW" else self.dims[-1]

    @property
    def spatial(self) -> tuple[int, int]:
        if self.layout == "CHW":
            return self.dims[1], self.dims[2]
        if self.layout == "HWC":
            return self.dims[0], self.dims[1]
        raise ValueError(f"{self.layout} has no spatial size")

    @property
    def numel(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n

    @classmethod
    def image(cls, channels: int, height: int, width: int) -> Shape:
        return cls("CHW", (channels, height, width))

    def with_channels(self, channels: int) -> Shape:
        if self.layout == "CHW":
            return Shape("CHW", (channels, *self.dims[1:]))
        return Shape(self.layout, (*self.dims[:-1], channels))

    def describe(self) -> str:
        return LAYOUT_NAMES[self.layout]

    def __str__(self) -> str:
        return "(" + ",".join(str(d) for d in self.dims) + ")"
