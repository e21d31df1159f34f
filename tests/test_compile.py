"""The compiled module: generated straight-line code, torch tooling, devices and dtypes."""

from typing import Annotated

import pytest
import torch
import torchvision
from pydantic import Field
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

import archspec
from archspec.compile import node_names
from archspec.ops.base import REGISTRY, Op, ShapeError
from archspec.shape import Shape

TINY = """\
name: tiny_net
input: {channels: 3, size: 32}
options:
  num_classes: {type: int, default: 10}
blocks:
  mbconv:
    params: {out_channels: channels, stride: {type: int, default: 1}, residual: {type: bool, default: false}}
    layers:
      - {op: conv2d, name: expand, out_channels: "${in_channels * 4}", kernel_size: 1, bias: false}
      - {op: batchnorm}
      - {op: silu}
      - {op: conv2d, name: dw, kernel_size: 3, stride: $stride, padding: same, groups: depthwise, bias: false}
      - {op: batchnorm}
      - {op: silu}
      - {op: squeeze_excitation, name: se, squeeze_channels: 4, activation: silu}
      - {op: conv2d, name: project, out_channels: $out_channels, kernel_size: 1, bias: false}
      - {op: batchnorm, name: bn}
      - {op: add, when: $residual, from: [bn, input]}
layers:
  - {op: conv2d, name: stem, out_channels: 16, kernel_size: 3, stride: 2, padding: 1}
  - {block: mbconv, name: stage1, repeat: 2, args: {out_channels: 16, residual: true}}
  - {block: mbconv, name: stage2, repeat: 2, args: {out_channels: 24, residual: true}, first: {stride: 2, residual: false}}
  - {op: adaptive_avgpool}
  - {op: flatten}
  - {op: dropout, p: 0.2}
  - {op: linear, name: head, out_features: $num_classes}
"""


@pytest.fixture(scope="module")
def tiny():
    return archspec.build(TINY).eval()


def test_forward_is_generated_straight_line_code(tiny):
    code = tiny.code
    assert "for " not in code and "while " not in code
    assert "self.stage2" in code and "torch.nn.functional.silu" in code


def test_parameter_names_follow_spec_node_names(tiny):
    names = set(tiny.state_dict())
    assert {
        "stem.weight",
        "stage1.0.expand.weight",
        "stage2.1.dw.weight",
        "stage2.0.se.fc1.weight",
        "stage2.1.bn.running_mean",
        "head.bias",
    } <= names


def test_in_channels_are_inferred(tiny):
    assert tiny.get_submodule("stage2.0.expand").in_channels == 16
    assert tiny.get_submodule("stage2.0.expand").out_channels == 64
    assert tiny.get_submodule("stage2.0.dw").groups == 64
    assert tiny.get_submodule("head").in_features == 24


def test_static_shapes_equal_real_shapes(tiny):
    graph = archspec.build_graph(TINY)
    x = torch.randn(2, 3, 32, 32)
    ShapeProp(tiny).propagate(x)
    fx_nodes = {n.name: n for n in tiny.graph.nodes}
    for node, fx_name in node_names(tiny).items():
        static = graph[node].shape
        real = fx_nodes[fx_name].meta["tensor_meta"].shape
        assert tuple(real) == (2, *static.dims), node


def test_torch_jit_trace_export_and_compile_agree(tiny):
    x = torch.randn(2, 3, 32, 32)
    expected = tiny(x)
    traced = torch.jit.trace(tiny, x)
    assert torch.allclose(traced(x), expected, atol=1e-6)
    exported = torch.export.export(tiny, (x,))
    assert torch.allclose(exported.module()(x), expected, atol=1e-6)
    compiled = torch.compile(tiny, backend="aot_eager", fullgraph=True)
    assert torch.allclose(compiled(x), expected, atol=1e-5)


def test_dtype_device_and_channels_last():
    model = archspec.build(
        TINY, device="cpu", dtype=torch.float64, memory_format=torch.channels_last
    )
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert model.get_submodule("stem").weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64).to(memory_format=torch.channels_last)
    assert model.eval()(x).shape == (1, 10)


def test_options_change_the_model():
    model = archspec.build(TINY, num_classes=3)
    assert model.get_submodule("head").out_features == 3
    with pytest.raises(archspec.GraphError, match="unknown option 'classes'"):
        archspec.build(TINY, classes=3)


def test_resnet50_matches_torchvision_names_and_outputs():
    ours = archspec.create_model("resnet50").eval()
    ref = torchvision.models.resnet50(weights=None).eval()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))


class Scale2(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def test_user_registered_op():
    @archspec.register
    class TimesFactor(Op):
        """x * factor, but only for even channel counts (to show a shape rule)."""

        op = "times_factor"
        factor: Annotated[float, Field(gt=0)] = 2.0

        def infer(self, inputs: list[Shape]) -> Shape:
            if inputs[0].channels % 2:
                raise ShapeError("needs an even number of channels")
            return inputs[0]

        def build(self, inputs):
            return Scale2(self.factor)

    try:
        spec = (
            "name: u\ninput: {channels: 4, size: 8}\nlayers:\n  - {op: times_factor, factor: 3.0}\n"
        )
        model = archspec.build(spec)
        x = torch.randn(1, 4, 8, 8)
        assert torch.equal(model(x), x * 3.0)
        with pytest.raises(archspec.GraphError, match="<spec>:4:5: node 0: needs an even"):
            archspec.build(spec.replace("channels: 4", "channels: 3"))
        with pytest.raises(ValueError, match="already registered"):
            archspec.register(type("Other", (Op,), {"op": "times_factor", "__module__": __name__}))
    finally:
        REGISTRY.pop("times_factor")


def test_in_place_activations_keep_training_gradients_identical():
    ours = archspec.create_model("resnet18").train()
    ref = torchvision.models.resnet18(weights=None).train()
    ours.load_state_dict(ref.state_dict())
    assert "torch.relu_(" in ours.code
    x = torch.randn(2, 3, 32, 32)
    ours(x).square().sum().backward()
    ref(x).square().sum().backward()
    for (name, a), (_, b) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-5, rtol=1e-4), name


def test_in_channels_in_block_args_is_the_instance_input():
    spec = """\
name: ic
input: {channels: 3, size: 8}
blocks:
  proj:
    params: {out_channels: channels}
    layers: [{op: conv2d, name: conv, out_channels: $out_channels, kernel_size: 1}]
layers:
  - {op: conv2d, out_channels: 8, kernel_size: 1}
  - {block: proj, name: doubled, repeat: 2, args: {out_channels: "${in_channels * 2}"}}
"""
    graph = archspec.build_graph(spec)
    assert graph["doubled.0.conv"].shape.channels == 16
    assert graph["doubled.1.conv"].shape.channels == 32
