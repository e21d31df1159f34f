"""MaxViT-T written from primitives (specs/maxvit_t.yaml) against torchvision's maxvit_t:
torchvision's state_dict loads strictly, outputs are identical, FLOPs are the counter's."""

import re

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

import archspec
from archspec.analysis import analyze
from archspec.zoo import spec_path


@pytest.mark.slow
def test_maxvit_t_is_torchvision_maxvit_t():
    reference = torchvision.models.maxvit_t(weights=None).eval()
    model = archspec.create_model("maxvit_t").eval()
    model.load_state_dict(reference.state_dict(), strict=True)  # same keys, same shapes
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_maxvit_t_flops_are_the_flop_counters():
    with torch.device("meta"):
        reference = torchvision.models.maxvit_t(weights=None).eval()
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        reference(torch.randn(1, 3, 224, 224, device="meta"))
    assert analyze(spec_path("maxvit_t")).flops == counter.get_total_flops() == 11_116_093_440


def test_relative_position_bias_needs_a_table_of_every_offset():
    text = """
name: w
input: {channels: 4, size: 4}
layers:
  - {op: flatten}
  - {op: parameter, shape: [10, 2]}
  - {op: relative_position_bias, window_size: 2}
"""
    message = "a 2x2 window has (2*2-1)*(2*2-1) = 9 relative positions; the table has 10 rows"
    with pytest.raises(archspec.GraphError, match=re.escape(message)):
        archspec.build_graph(text)
