"""Every zoo spec against torchvision: exact parameter count, same weights, same outputs."""

import pytest
import torch
import torchvision

import archspec
from archspec.zoo import list_specs

# name -> (torchvision builder kwargs, parameter count at 1000 classes, smallest test input)
REFERENCE = {
    "alexnet": ({}, 61_100_840, 63),
    "vgg16": ({}, 138_357_544, 32),
    "vgg16_bn": ({}, 138_365_992, 32),
    "googlenet": ({"aux_logits": False, "init_weights": False}, 6_624_904, 64),
    "resnet18": ({}, 11_689_512, 32),
    "resnet50": ({}, 25_557_032, 32),
    "densenet121": ({}, 7_978_856, 32),
    "mobilenet_v2": ({}, 3_504_872, 32),
    "mobilenet_v3_large": ({}, 5_483_032, 32),
    "efficientnet_b0": ({}, 5_288_548, 32),
    "vit_b_16": ({}, 86_567_656, 224),
    "convnext_tiny": ({}, 28_589_128, 32),
    "shufflenet_v2_x1_0": ({}, 2_278_604, 32),
    # 32 pixels: windows padded at every stage, shifts dropped where a window covers the map
    "swin_t": ({}, 28_288_354, 32),
    "swin_v2_t": ({}, 28_351_570, 32),
    # 224 pixels: the smallest input whose stages all split into 7x7 partitions
    "maxvit_t": ({}, 30_919_624, 224),
}
ZOO = [name for name in REFERENCE if name in list_specs()]
SLOW = {"maxvit_t"}  # a forward pass at 224 pixels, twice


def test_every_shipped_spec_has_a_reference():
    assert set(list_specs()) <= set(REFERENCE) | {"tiny"}, "add new zoo specs to REFERENCE"


@pytest.mark.parametrize("name", ZOO)
def test_parameter_count_matches_torchvision(name):
    _, params, _ = REFERENCE[name]
    model = archspec.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ZOO]
)
def test_same_outputs_as_torchvision_with_its_weights(name):
    kwargs, _, size = REFERENCE[name]
    reference = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
    model = archspec.create_model(name).eval()
    archspec.load_torchvision_state_dict(model, reference.state_dict())
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected, got = reference(x), model(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4
