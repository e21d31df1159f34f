"""Inference rewrites before export: BatchNorm folded into the preceding convolution (torch.fx's
own `fuse`), and the faster memory layout (NCHW or channels_last) chosen by timing both."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import torch
from torch import fx, nn
from torch.fx.experimental.optimization import fuse

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class Optimized:
    """The rewritten module and what was done to it."""

    module: nn.Module
    folded: int  # BatchNorms folded into convolutions (or linear layers)
    batchnorms: int  # BatchNorms the model had
    layout: str  # "contiguous" or "channels_last"
    latency_ms: dict[str, float] = field(default_factory=dict)  # median per layout, if timed

    def describe(self) -> str:
        text = f"folded {self.folded} of {self.batchnorms} BatchNorms into convolutions"
        if self.latency_ms:
            timed = ", ".join(f"{k} {v:.2f} ms" for k, v in self.latency_ms.items())
            text += f"; {self.layout} layout ({timed})"
        return text


def count_batchnorms(module: nn.Module) -> int:
    return sum(isinstance(m, _NORMS) for m in module.modules())


def fold_batchnorm(model: fx.GraphModule) -> fx.GraphModule:
    """A copy of an eval-mode GraphModule with every BatchNorm that directly follows a conv
    (and is its only reader) folded into the conv's weight and bias."""
    if model.training:
        raise ValueError("BatchNorm folding needs a model in eval mode (running statistics)")
    return fuse(model, inplace=False, no_trace=True)


def time_layouts(
    module: nn.Module, example: torch.Tensor, repeats: int = 5, warmup: int = 2
) -> dict[str, float]:
    """Median forward latency in ms per memory layout (weights and input both converted), the
    layouts alternating run by run so that a busy machine slows both alike."""
    samples: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    for i in range(warmup + repeats):
        for name, layout in LAYOUTS.items():
            module.to(memory_format=layout)  # outside inference_mode: these stay parameters
            x = example.contiguous(memory_format=layout)
            with torch.inference_mode():
                start = time.perf_counter()
                module(x)
                elapsed = time.perf_counter() - start
            if i >= warmup:
                samples[name].append(elapsed * 1e3)
    return {name: statistics.median(times) for name, times in samples.items()}


def optimize(
    model: fx.GraphModule, example: torch.Tensor | None = None, repeats: int = 5
) -> Optimized:
    """BatchNorm folded; with an `example` input (N, C, H, W) the faster layout is measured
    and applied (conv weights stored channels_last make torch's CPU convolutions produce
    channels_last activations from plain NCHW input)."""
    folded = fold_batchnorm(model)
    before, after = count_batchnorms(model), count_batchnorms(folded)
    latency: dict[str, float] = {}
    layout = "contiguous"
    if example is not None and example.dim() == 4:
        latency = time_layouts(folded, example, repeats)
        layout = min(latency, key=latency.__getitem__)
    folded = folded.to(memory_format=LAYOUTS[layout])
    return Optimized(folded, before - after, before, layout, latency)
