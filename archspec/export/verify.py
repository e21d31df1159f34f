"""Checking a written file against the eager model: the same fixed inputs through both, the
maximum absolute difference of every output, and a loud ExportError when it is too large."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from archspec.errors import ExportError
from archspec.spec.model import Spec

BATCHES = (1, 4)  # batch 1 is what deployment runs; 4 proves the batch axis is dynamic
TOLERANCE = 1e-4  # relative to the largest reference output (at least 1)
SEED = 0


@dataclass(frozen=True)
class Check:
    """One verified batch: the largest |exported - eager| over all outputs."""

    batch: int
    max_abs_diff: float


def example_inputs(spec: Spec, batches: Sequence[int] = BATCHES) -> list[torch.Tensor]:
    """Fixed inputs (N, C, H, W): standard normal from a private seeded generator."""
    generator = torch.Generator().manual_seed(SEED)
    height, width = spec.input.hw
    return [
        torch.randn(batch, spec.input.channels, height, width, generator=generator)
        for batch in batches
    ]


def outputs(value: Any) -> list[torch.Tensor]:
    """A model's output (a tensor, or a tuple/list of them, e.g. auxiliary heads) as a list."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in outputs(item)]
    raise ExportError(f"the model returned {type(value).__name__}, not tensors")


def reference(model: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
    with torch.inference_mode():
        return [[t.detach().clone() for t in outputs(model(x))] for x in inputs]


def compare(
    what: str,
    expected: Sequence[Sequence[torch.Tensor]],
    got: Sequence[Sequence[Any]],
    inputs: Sequence[torch.Tensor],
    tolerance: float = TOLERANCE,
) -> list[Check]:
    """One Check per input batch; raises ExportError naming the batch and the difference when
    an output is missing, has another shape, is not finite or differs by more than tolerance x
    max(1, max |expected|)."""
    checks = []
    for x, want, have in zip(inputs, expected, got, strict=True):
        batch = x.shape[0]
        if len(have) != len(want):
            raise ExportError(
                f"{what}: verification failed at batch {batch}: {len(have)} outputs, "
                f"the eager model has {len(want)}"
            )
        worst = 0.0
        for index, (w, h) in enumerate(zip(want, have, strict=True)):
            h = torch.as_tensor(h).to(w.dtype)
            if tuple(h.shape) != tuple(w.shape):
                raise ExportError(
                    f"{what}: verification failed at batch {batch}: output {index} has shape "
                    f"{tuple(h.shape)}, the eager model's {tuple(w.shape)}"
                )
            diff = (h - w).abs().max().item() if w.numel() else 0.0
            allowed = tolerance * max(1.0, w.abs().max().item() if w.numel() else 0.0)
            if not diff <= allowed:  # also catches NaN
                raise ExportError(
                    f"{what}: verification failed at batch {batch}: max abs difference "
                    f"{diff:.3g} from the eager model (allowed {allowed:.3g})"
                )
            worst = max(worst, diff)
        checks.append(Check(batch, worst))
    return checks
