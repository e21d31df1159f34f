"""Each fused op against the block of primitives it stands for, on the same weights: the fused
ops are kept for speed, the primitives say what they compute."""

from __future__ import annotations

import pytest
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

# Swin's shifted-window attention on an 8x8 map with C = 8: 4x4 windows shifted by 2, 2 heads
# of 4 channels. V1 scores q.k / sqrt(d) plus a bias table; V2 (`cosine`, `position_bias: mlp`)
# scores cos(q, k) times a clamped learned scale plus 16 * sigmoid(MLP(coordinates)), and has no
# key bias. The shift's mask is a buffer here, filled by the test.
WINDOW = """
name: window_attention_fused_vs_composed_{version}
input: {{channels: 8, size: 8}}
layers:
  - {{op: permute, to: HWC, name: x}}
  - op: window_attention
    name: fused
    from: x
    num_heads: 2
    window_size: 4
    shift_size: 2
    cosine: {v2}
    position_bias: {bias}
  - name: composed
    from: x
    layers:
      - {{op: roll, shifts: -2}}
      # (H, W, C) -> (2, 4, 2, 4, C) -> (2, 2, 4, 4, C) -> (windows, tokens, C)
      - {{op: reshape, shape: [2, 4, 2, 4, 8]}}
      - {{op: permute, dims: [0, 1, 3, 2, 4, 5]}}
      - {{op: reshape, name: windows, shape: [4, 16, 8], layout: HWC}}
      # -> (windows, heads, tokens, d)
      - {{op: linear, name: q, out_features: 8}}
      - {{op: reshape, shape: [4, 16, 2, 4]}}
      - {{op: permute, name: qh, dims: [0, 1, 3, 2, 4]}}
      - {{op: linear, name: k, out_features: 8, bias: {k_bias}, from: windows}}
      - {{op: reshape, shape: [4, 16, 2, 4]}}
      - {{op: permute, name: kh, dims: [0, 1, 3, 2, 4]}}
      - {{op: linear, name: v, out_features: 8, from: windows}}
      - {{op: reshape, shape: [4, 16, 2, 4]}}
      - {{op: permute, name: vh, dims: [0, 1, 3, 2, 4]}}
{scores}
      - {{op: add, name: biased, from: [logits, bias]}}
      - {{op: parameter, name: mask, shape: [4, 1, 16, 16], trainable: false}}
      - {{op: add, from: [biased, mask]}}
      - {{op: softmax, name: weights}}
      - {{op: matmul, from: [weights, vh]}}
      - {{op: permute, dims: [0, 1, 3, 2, 4]}}
      - {{op: reshape, shape: [4, 16, 8], layout: HWC}}
      - {{op: linear, name: proj, out_features: 8}}
      # back: (windows, tokens, C) -> (2, 2, 4, 4, C) -> (2, 4, 2, 4, C) -> (H, W, C)
      - {{op: reshape, shape: [2, 2, 4, 4, 8]}}
      - {{op: permute, dims: [0, 1, 3, 2, 4, 5]}}
      - {{op: reshape, shape: [8, 8, 8], layout: HWC}}
      - {{op: roll, shifts: 2}}
outputs: [fused, composed]
"""
V1_SCORES = """\
      - {op: scale, name: q_scaled, value: 0.5, from: qh}  # d ** -0.5
      - {op: matmul, name: logits, from: [q_scaled, kh], transpose_b: true}
      - {op: parameter, name: relative_position_bias_table, shape: [49, 2]}
      - {op: relative_position_bias, name: relative_position_index, window_size: 4}
      - {op: identity, name: bias}"""
V2_SCORES = """\
      - {op: normalize, name: q_unit, from: qh}
      - {op: normalize, name: k_unit, from: kh}
      - {op: matmul, name: cosines, from: [q_unit, k_unit], transpose_b: true}
      - {op: parameter, name: logit_scale, shape: [1, 1, 2, 1, 1], init: log, value: 10.0}
      - {op: clamp, max: 4.605170185988092}  # log(100)
      - {op: exp, name: temperature}
      - {op: mul, name: logits, from: [cosines, temperature]}
      - {op: parameter, name: relative_coords_table, shape: [1, 7, 7, 2], layout: HWC,
         trainable: false}
      - name: cpb_mlp
        layers:
          - {op: linear, out_features: 512}
          - {op: relu}
          - {op: linear, out_features: 2, bias: false}
      - {op: reshape, shape: [49, 2]}
      - {op: relative_position_bias, name: relative_position_index, window_size: 4}
      - {op: sigmoid}
      - {op: scale, name: bias, value: 16.0}"""


def _window_spec(v2: bool) -> str:
    return WINDOW.format(
        version="v2" if v2 else "v1",
        v2=str(v2).lower(),
        bias="mlp" if v2 else "table",
        k_bias=str(not v2).lower(),
        scores=V2_SCORES if v2 else V1_SCORES,
    )


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


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_window_attention_is_its_composed_block(v2):
    from archspec.ops.modules import shift_mask

    model = archspec.build(archspec.load_spec(_window_spec(v2))).eval()
    _random_weights(model)
    fused, composed = model.fused, model.composed
    state = {k: v for k, v in fused.state_dict().items() if not k.startswith(("qkv", "cpb"))}
    for i, name in enumerate("qkv"):
        state[f"{name}.weight"] = fused.qkv.weight[8 * i : 8 * i + 8]
        if not (v2 and name == "k"):  # V2 has no key bias: the fused op ignores it
            state[f"{name}.bias"] = fused.qkv.bias[8 * i : 8 * i + 8]
    if v2:
        state["logit_scale"] = fused.logit_scale.view(1, 1, 2, 1, 1)
        state.update({f"cpb_mlp.{k}": v for k, v in fused.cpb_mlp.state_dict().items()})
    state["relative_position_index"] = composed.relative_position_index
    probe = torch.zeros(1, 2, 16, 16)
    state["mask"] = shift_mask(8, 8, (4, 4), (2, 2), probe).unsqueeze(1)
    composed.load_state_dict(state, strict=True)
    with torch.no_grad():
        got_fused, got_composed = model(torch.randn(2, 8, 8, 8))
    torch.testing.assert_close(got_composed, got_fused)


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

    for text in (ATTENTION, SQUEEZE, _window_spec(False), _window_spec(True)):
        spec = archspec.load_spec(text)
        model = archspec.build(spec).eval()
        dims = (spec.input.channels, spec.input.size, spec.input.size)
        assert archspec.analyze(spec).flops == counted_flops(model, dims, device="cpu")
