"""Zoo spec options against torchvision's constructor arguments: num_classes, googlenet's aux heads."""

import pytest
import torch
import torchvision
from torch import nn

import archspec
from archspec.analysis import analyze
from archspec.zoo import list_specs, spec_path

# torchvision builder arguments besides num_classes (googlenet's aux heads are off in the spec)
TORCHVISION_KWARGS = {"googlenet": {"aux_logits": False, "init_weights": False}}
ZOO = [name for name in list_specs() if hasattr(torchvision.models, name)]


def _torchvision_params(name: str, **kwargs) -> int:
    with torch.device("meta"):  # no memory, no init: only the shapes matter
        model = getattr(torchvision.models, name)(weights=None, **kwargs)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ZOO)
def test_num_classes_resizes_the_head(name):
    report = analyze(spec_path(name), num_classes=10)
    assert [report.nodes[out].shape.dims for out in report.outputs] == [(10,)]
    kwargs = {**TORCHVISION_KWARGS.get(name, {}), "num_classes": 10}
    assert report.params == _torchvision_params(name, **kwargs)


def test_googlenet_aux_heads_add_two_outputs_and_their_parameters():
    model = archspec.create_model("googlenet", aux_logits=True, num_classes=10)
    params = sum(p.numel() for p in model.parameters())
    assert params == _torchvision_params(
        "googlenet", aux_logits=True, init_weights=False, num_classes=10
    )
    assert analyze(spec_path("googlenet"), aux_logits=True).params == 13_004_888
    with torch.no_grad():
        outputs = model.eval()(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outputs] == [(1, 10)] * 3


def test_googlenet_without_aux_heads_returns_one_tensor():
    model = archspec.create_model("googlenet").eval()
    with torch.no_grad():
        assert isinstance(model(torch.randn(1, 3, 64, 64)), torch.Tensor)


def _no_dropout(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model


def test_googlenet_aux_heads_match_torchvision_in_training_mode():
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    model = archspec.create_model("googlenet", aux_logits=True)
    archspec.load_torchvision_state_dict(model, reference.state_dict())
    _no_dropout(reference).train()
    _no_dropout(model).train()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = reference(x), model(x)  # (logits, aux2, aux1) in both
    assert len(got) == len(expected) == 3
    for g, e in zip(got, expected, strict=True):
        assert (g - e).abs().max().item() <= 1e-4
