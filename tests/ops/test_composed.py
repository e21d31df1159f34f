"""Each fused op against the block of primitives it stands for, on the same weights: the fused
ops are kept for speed, the primitives say what they compute."""

from __future__ import annotations

import torch

import archspec

ATTENTION = """
name: attention_fused_vs_composed
input: {channels: 6, size: 4}
layers:
  - {op: permute, to: HWC}
  - {op: reshape, shape: [16, 6], name: tokens}         # (L, C) = (16, 6)
  - {op: attention, num_heads: 2, name: fused, from: tokens}
  - name: composed
    from: tokens
    layers:
      - {op: linear, name: q, out_features: 6, from: input}
      - {op: reshape, shape: [16, 2, 3]}                # (L, heads, d)
      - {op: permute, dims: [0, 2, 1, 3], name: qh}     # (heads, L, d)
      - {op: linear, name: k, out_features: 6, from: input}
      - {op: reshape, shape: [16, 2, 3]}
      - {op: permute, dims: [0, 2, 1, 3], name: kh}
      - {op: linear, name: v, out_features: 6, from: input}
      - {op: reshape, shape: [16, 2, 3]}
      - {op: permute, dims: [0, 2, 1, 3], name: vh}
      - {op: matmul, transpose_b: true, from: [qh, kh]} # (heads, L, L)
      - {op: scale, value: 0.5773502691896258}          # d ** -0.5
      - {op: softmax, name: weights}
      - {op: matmul, from: [weights, vh]}               # (heads, L, d)
      - {op: permute, dims: [0, 2, 1, 3]}
      - {op: reshape, shape: [16, 6]}
      - {op: linear, name: out_proj, out_features: 6}
outputs: [fused, composed]
"""

SQUEEZE = """
name: squeeze_fused_vs_composed
input: {channels: 8, size: 5}
layers:
  - {op: conv2d, name: stem, out_channels: 8, kernel_size: 1}
  - {op: squeeze_excitation, name: fused, squeeze_channels: 2, gate: hardsigmoid, from: stem}
  - name: composed
    from: stem
    layers:
      - {op: adaptive_avgpool}
      - {op: conv2d, name: fc1, out_channels: 2, kernel_size: 1}
      - {op: relu}
      - {op: conv2d, name: fc2, out_channels: 8, kernel_size: 1}
      - {op: hardsigmoid, name: gate}
      - {op: mul, from: [gate, input]}
  - {op: layer_scale, name: fused_scale, init: 0.5, from: stem}
  - {op: scale, name: composed_scale, learned: channels, value: 0.5, from: stem}
outputs: [fused, composed, fused_scale, composed_scale]
"""


def _random_weights(model: torch.nn.Module) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)


def test_attention_is_its_composed_block():
    model = archspec.build(archspec.load_spec(ATTENTION)).eval()
    _random_weights(model)
    mha = model.fused
    with torch.no_grad():
        for i, name in enumerate("qkv"):
            getattr(model.composed, name).weight.copy_(mha.in_proj_weight[6 * i : 6 * i + 6])
            getattr(model.composed, name).bias.copy_(mha.in_proj_bias[6 * i : 6 * i + 6])
        model.composed.out_proj.load_state_dict(mha.out_proj.state_dict())
        fused, composed = model(torch.randn(2, 6, 4, 4))
    torch.testing.assert_close(composed, fused)
    graph_cost = archspec.analyze(archspec.load_spec(ATTENTION))
    assert graph_cost.params > 0


def test_squeeze_excitation_and_layer_scale_are_their_composed_blocks():
    model = archspec.build(archspec.load_spec(SQUEEZE)).eval()
    _random_weights(model)
    with torch.no_grad():
        for name in ("fc1", "fc2"):
            getattr(model.composed, name).load_state_dict(getattr(model.fused, name).state_dict())
        model.composed_scale.copy_(model.fused_scale)
        fused, composed, fused_scale, composed_scale = model(torch.randn(2, 8, 5, 5))
    torch.testing.assert_close(composed, fused)
    torch.testing.assert_close(composed_scale, fused_scale)


def test_composed_costs_agree_with_the_flop_counter():
    from tests.analysis.test_cost import counted_flops

    for text in (ATTENTION, SQUEEZE):
        spec = archspec.load_spec(text)
        model = archspec.build(spec).eval()
        dims = (spec.input.channels, spec.input.size, spec.input.size)
        assert archspec.analyze(spec).flops == counted_flops(model, dims, device="cpu")
