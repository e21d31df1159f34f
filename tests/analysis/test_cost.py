"""analyze() against the built module: exact parameter counts, FLOPs within 1% of
torch.utils.flop_counter, for every zoo spec and for small specs covering the other ops."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import archspec
from archspec.analysis import analyze
from archspec.zoo import list_specs, spec_path

# Ops the zoo may not use yet; each spec here runs through the same checks as the zoo.
SMALL = {
    "vit_like": """
name: vit_like
input: {channels: 3, size: 32, size_multiple: 8}
layers:
  - {op: patch_embed, out_channels: 48, patch_size: 8}
  - {op: class_token}
  - {op: pos_embedding}
  - name: blocks
    repeat: 2
    layers:
      - {op: layernorm, name: ln1}
      - {op: attention, name: attn, num_heads: 4}
      - {op: add, name: res1, from: [attn, input]}
      - {op: layernorm, name: ln2}
      - {op: mlp, name: mlp, hidden_features: 96, dropout: 0.1}
      - {op: add, from: [mlp, res1]}
  - {op: layernorm, eps: 1.0e-6}
  - {op: select_token}
  - {op: linear, out_features: 10}
""",
    "convnext_like": """
name: convnext_like
input: {channels: 3, size: 32, size_multiple: 4}
layers:
  - {op: conv2d, out_channels: 16, kernel_size: 4, stride: 4}
  - {op: layernorm, name: stem_norm}
  - {op: conv2d, kernel_size: 7, padding: 3, groups: depthwise}
  - {op: permute, to: HWC}
  - {op: layernorm}
  - {op: linear, out_features: 64}
  - {op: gelu}
  - {op: linear, out_features: 16}
  - {op: layer_scale}
  - {op: permute, name: back, to: CHW}
  - {op: stochastic_depth, name: drop, p: 0.1}
  - {op: add, from: [drop, stem_norm]}
  - {op: adaptive_avgpool}
  - {op: flatten}
  - {op: linear, out_features: 10, bias: false}
""",
    "mobile_like": """
name: mobile_like
input: {channels: 3, size: [40, 24], size_multiple: 8}
layers:
  - {op: conv2d, out_channels: 16, kernel_size: 3, stride: 2, padding: 1, bias: false}
  - {op: batchnorm, name: stem}
  - {op: hardswish}
  - {op: conv2d, name: grouped, out_channels: 32, kernel_size: 3, padding: same, groups: 4}
  - {op: squeeze_excitation, name: se, squeeze_channels: 8, gate: hardsigmoid}
  - {op: conv2d, name: side, from: stem, out_channels: 8, kernel_size: 1, dilation: 2}
  - {op: concat, from: [se, side]}
  - {op: maxpool, kernel_size: 2, ceil_mode: true}
  - {op: avgpool, kernel_size: 3, stride: 1, padding: 1}
  - {op: adaptive_avgpool, output_size: 2}
  - {op: flatten}
  - {op: dropout, p: 0.2}
  - {op: linear, out_features: 32}
  - {op: batchnorm}
  - {op: relu6}
  - {op: linear, out_features: 10}
""",
}


def _model(source, **options) -> torch.nn.Module:
    # meta tensors: the module's structure and the counted FLOPs without allocating weights
    with torch.device("meta"):
        return archspec.build(source, **options).eval()


def counted_flops(model: torch.nn.Module, dims: tuple[int, ...], device: str = "meta") -> int:
    """FlopCounterMode on one forward, with autograd on and the math attention kernel: under
    no_grad nn.MultiheadAttention takes a fused path the counter does not see."""
    x = torch.randn(1, *dims, device=device)
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        model(x)
    return fc.get_total_flops()


def _sources():
    yield from ((name, spec_path(name)) for name in list_specs())
    yield from SMALL.items()


SOURCES = dict(_sources())


@pytest.mark.parametrize("name", SOURCES)
def test_params_are_exact(name):
    report = analyze(SOURCES[name])
    if name in SMALL:
        model = _model(SOURCES[name])
    else:
        with torch.device("meta"):
            model = archspec.create_model(name)
    assert report.params == sum(p.numel() for p in model.parameters())
    assert report.params > 0


@pytest.mark.parametrize("name", SOURCES)
def test_flops_agree_with_flop_counter(name):
    report = analyze(SOURCES[name])
    counted = counted_flops(_model(SOURCES[name]), report.input_shape.dims)
    assert counted > 0
    assert abs(report.flops - counted) <= 0.01 * counted, (report.flops, counted)
    assert report.flops == 2 * report.macs


def test_counting_on_meta_tensors_equals_counting_on_real_ones():
    text = SMALL["mobile_like"]
    dims = analyze(text).input_shape.dims
    real = archspec.build(text).eval()
    assert counted_flops(real, dims, "cpu") == counted_flops(_model(text), dims)


def test_node_figures_add_up_and_scale_with_batch():
    report = analyze(SMALL["mobile_like"], batch=8, dtype_bytes=2)
    node = report.nodes["grouped"]
    # (32, 20, 12) output, 16/4 input channels per group, 3x3 kernel; 32*4*9 + 32 bias params
    assert node.shape.dims == (32, 20, 12)
    assert node.macs == 32 * 20 * 12 * 4 * 9
    assert node.params == 32 * 4 * 9 + 32
    assert node.activation_bytes == 32 * 20 * 12 * 8 * 2
    assert report.activation_bytes == sum(n.activation_bytes for n in report.nodes.values())
    data = report.to_dict()
    assert data["flops"] == report.flops and data["nodes"]["grouped"]["macs"] == node.macs
