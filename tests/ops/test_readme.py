"""The README's user-defined op and reusable block, run exactly as written there."""

import re
from pathlib import Path

import pytest
import torch

import archspec
from archspec.analysis.lint import lint
from archspec.ops import REGISTRY

from .test_contract import check_example

README = (Path(__file__).parents[2] / "README.md").read_text()


def _block(language: str, marker: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README, re.S)
    [block] = [b for b in blocks if marker in b]
    return block


@pytest.fixture
def separable_conv():
    namespace: dict = {}
    exec(_block("python", "class SeparableConv"), namespace)  # the README's code, as written
    yield namespace["SeparableConv"]
    del REGISTRY["separable_conv"]


def test_the_readme_op_passes_the_op_contract(separable_conv):
    assert REGISTRY["separable_conv"] is separable_conv
    for example in separable_conv.examples:
        check_example(separable_conv, example)


def test_the_readme_block_builds_analyses_and_scales(separable_conv):
    spec = archspec.load_spec(_block("yaml", "name: tiny_xception"))
    model = archspec.build(spec).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert "stage2.0.conv.0.weight" in model.state_dict()
    assert "stage2.1.3" in dict(archspec.build_graph(spec).nodes)  # the residual add, numbered
    report = archspec.analyze(spec)
    assert report.params == sum(p.numel() for p in model.parameters())
    # stage2.0: 16 -> 32 channels with a 5x5 depthwise kernel at 16x16
    assert report.nodes["stage2.0.conv"].params == 16 * 25 + 16 * 32
    assert report.nodes["stage2.0.conv"].macs == 16 * 16 * (16 * 25 + 16 * 32)
    assert lint(spec) == []
    smaller = archspec.scale(spec, kernels={"stage2": 3})
    assert archspec.analyze(smaller).nodes["stage2.0.conv"].params == 16 * 9 + 16 * 32
