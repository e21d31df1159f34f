"""A tiny spec (the digits search base, 12x12) with non-trivial BatchNorm statistics."""

from pathlib import Path

import pytest
import torch

from archspec.export import Source
from archspec.sources import load_source

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "search" / "bases" / "tiny_effnet.yaml"


def randomize_batchnorm(model: torch.nn.Module, seed: int = 1) -> None:
    """Running statistics and affine terms away from their init, so folding changes numbers."""
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=generator) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=generator) * 0.1)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny() -> Source:
    source = load_source(TINY)
    randomize_batchnorm(source.model)
    return source


def inputs(batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, 1, 12, 12, generator=torch.Generator().manual_seed(7))
