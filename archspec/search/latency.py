"""Latency of a candidate: the median wall time of a batch-1 forward on the search's device.
The probe input comes from its own generator: measuring never moves the global RNG, so a
trial trains exactly as a retraining of its exported spec does."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from archspec.train.loop import MEMORY_FORMAT, autocast


@torch.inference_mode()
def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    device: torch.device,
    *,
    warmup: int = 5,
    repeats: int = 20,
) -> float:
    """Milliseconds per forward of one (C, H, W) input, after `warmup` unmeasured runs."""
    model.eval()
    fmt = MEMORY_FORMAT
    probe = torch.Generator().manual_seed(0)
    x = torch.randn(1, *input_shape, generator=probe).to(device).contiguous(memory_format=fmt)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with autocast(device):
        for i in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0
