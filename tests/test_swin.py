"""Swin-T at its own resolution (the zoo test runs it at 32 pixels, where windows are padded)."""

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
