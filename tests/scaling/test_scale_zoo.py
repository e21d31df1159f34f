"""Scaling proofs on zoo specs: efficientnet_b0 scaled by torchvision's (width, depth) pairs has
exactly torchvision's B1..B7 parameter counts; MobileNet width multipliers match too."""

import pytest
import torch
import torchvision

import archspec
from archspec.analysis import analyze
from archspec.scaling.rewrite import apply_preset, scale

# torchvision's efficientnet_bN: (width, depth, resolution, dropout, parameters)
RELEASED = {
    "b0": (1.0, 1.0, 224, 0.2, 5_288_548),
    "b1": (1.0, 1.1, 240, 0.2, 7_794_184),
    "b2": (1.1, 1.2, 260, 0.3, 9_109_994),
    "b3": (1.2, 1.4, 300, 0.3, 12_233_232),
    "b4": (1.4, 1.8, 380, 0.4, 19_341_616),
    "b5": (1.6, 2.2, 456, 0.4, 30_389_784),
    "b6": (1.8, 2.6, 528, 0.5, 43_040_704),
    "b7": (2.0, 3.1, 600, 0.5, 66_347_960),
}


@pytest.fixture(scope="module")
def b0():
    return archspec.load_spec("specs/efficientnet_b0.yaml")


@pytest.mark.parametrize("name", list(RELEASED))
def test_scaled_b0_has_torchvision_parameter_count(b0, name):
    width, depth, resolution, _, params = RELEASED[name]
    scaled = scale(b0, width=width, depth=depth, size=resolution)
    assert analyze(scaled).params == params
    assert scaled.input.size == resolution


def test_shipped_presets_are_the_released_table(b0):
    assert b0.scaling.divisor == 8
    table = {
        name: (p.width, p.depth, p.resolution, p.options.get("dropout"))
        for name, p in b0.scaling.presets.items()
    }
    assert table == {name: row[:4] for name, row in RELEASED.items()}


@pytest.mark.parametrize("name", list(RELEASED))
def test_every_preset_gives_the_released_model(b0, name):
    report = analyze(apply_preset(b0, name))
    resolution = RELEASED[name][2]
    assert report.input_shape.dims == (3, resolution, resolution)
    with torch.device("meta"):  # shapes only: no memory, no init
        reference = getattr(torchvision.models, f"efficientnet_{name}")(weights=None)
    assert report.params == sum(p.numel() for p in reference.parameters()) == RELEASED[name][4]


def test_create_model_with_scale_equals_torchvision_b3():
    ours = archspec.create_model("efficientnet_b0", scale="b3").eval()
    ref = torchvision.models.efficientnet_b3(weights=None).eval()
    assert sum(p.numel() for p in ours.parameters()) == 12_233_232
    archspec.load_torchvision_state_dict(ours, ref.state_dict())
    assert ours.get_submodule("classifier.0").p == 0.3  # the preset's dropout
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max().item() <= 1e-4


@pytest.mark.parametrize("width", [0.35, 0.75, 1.4])
def test_mobilenet_v2_width_multiplier_is_torchvisions(width):
    scaled = scale(archspec.load_spec("specs/mobilenet_v2.yaml"), width=width)
    with torch.device("meta"):
        reference = torchvision.models.mobilenet_v2(weights=None, width_mult=width)
    assert analyze(scaled).params == sum(p.numel() for p in reference.parameters())


@pytest.mark.parametrize("width", [0.35, 0.75, 1.4])
def test_mobilenet_v3_width_multiplier_is_torchvisions(width):
    from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf

    scaled = scale(archspec.load_spec("specs/mobilenet_v3_large.yaml"), width=width)
    with torch.device("meta"):
        reference = MobileNetV3(*_mobilenet_v3_conf("mobilenet_v3_large", width_mult=width))
    assert analyze(scaled).params == sum(p.numel() for p in reference.parameters())
