"""Swin-T and Swin V2-T at their own resolution (the zoo test runs them at 32 pixels, where
windows are padded)."""

import re

import pytest
import torch
import torchvision

import archspec


@pytest.mark.slow
def test_swin_t_is_torchvision_swin_t_at_224():
    reference = torchvision.models.swin_t(weights=None).eval()
    model = archspec.create_model("swin_t").eval()
    archspec.load_torchvision_state_dict(model, reference.state_dict())
    assert set(model.state_dict()) == set(reference.state_dict())  # loaded by name
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


@pytest.mark.slow
def test_swin_v2_t_is_torchvision_swin_v2_t_at_224():
    torch.manual_seed(0)
    reference = torchvision.models.swin_v2_t(weights=None).eval()
    with torch.no_grad():  # a key bias and scales away from their initial values: V2 ignores
        for name, p in reference.named_parameters():  # the former, clamps the latter
            if name.endswith(("qkv.bias", "logit_scale")):
                p.copy_(torch.randn_like(p) * 3)
    model = archspec.create_model("swin_v2_t").eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (
            "{op: window_attention, num_heads: 2}",
            "window_attention expects a channels-last tensor (N,H,W,C); got an image tensor "
            "(N,C,H,W) (8,14,14); add {op: permute, to: HWC} first",
        ),
        (
            "{op: permute, to: HWC}\n  - {op: window_attention, num_heads: 3}",
            "num_heads 3 must divide the 8 channels",
        ),
        (
            "{op: permute, to: HWC}\n  - {op: window_attention, num_heads: 2, shift_size: 7}",
            "shift_size 7 must be smaller than window_size 7",
        ),
    ],
)
def test_window_attention_mistakes(layer, message):
    text = f"name: w\ninput: {{channels: 8, size: 14}}\nlayers:\n  - {layer}\n"
    with pytest.raises(archspec.GraphError, match=re.escape(message)):
        archspec.build_graph(text)
