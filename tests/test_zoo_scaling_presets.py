"""Scaled zoo specs equal torchvision: efficientnet_b0's B0..B7 presets, MobileNet widths."""

import pytest
import torch
import torchvision

import archspec
from archspec.analysis import analyze
from archspec.scale import apply_preset, scale
from archspec.zoo import spec_path

# torchvision's efficientnet_b0..b7: (width, depth, resolution, dropout)
RELEASED = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}


@pytest.fixture(scope="module")
def spec():
    return archspec.load_spec(spec_path("efficientnet_b0"))


def test_the_preset_table_is_torchvisions(spec):
    assert spec.scaling.divisor == 8
    table = {
        name: (p.width, p.depth, p.resolution, p.options.get("dropout"))
        for name, p in spec.scaling.presets.items()
    }
    assert table == RELEASED


@pytest.mark.parametrize("preset", list(RELEASED))
def test_every_preset_gives_the_released_model(spec, preset):
    scaled, _ = apply_preset(spec, preset)
    report = analyze(scaled)
    resolution = RELEASED[preset][2]
    assert report.input_shape.dims == (3, resolution, resolution)
    with torch.device("meta"):  # shapes only: no memory, no init
        reference = getattr(torchvision.models, f"efficientnet_{preset}")(weights=None)
    assert report.params == sum(p.numel() for p in reference.parameters())


def test_create_model_with_a_preset():
    model = archspec.create_model("efficientnet_b0", scale="b3")
    assert sum(p.numel() for p in model.parameters()) == 12_233_232
    assert model.get_submodule("classifier.0").p == 0.3  # the preset's dropout option


@pytest.mark.parametrize("width", [0.35, 0.75, 1.4])
def test_mobilenet_v2_width_multiplier_is_torchvisions(width):
    scaled = scale(archspec.load_spec(spec_path("mobilenet_v2")), width=width)
    with torch.device("meta"):
        reference = torchvision.models.mobilenet_v2(weights=None, width_mult=width)
    assert analyze(scaled).params == sum(p.numel() for p in reference.parameters())


@pytest.mark.parametrize("width", [0.35, 0.75, 1.4])
def test_mobilenet_v3_width_multiplier_is_torchvisions(width):
    from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf

    scaled = scale(archspec.load_spec(spec_path("mobilenet_v3_large")), width=width)
    with torch.device("meta"):
        reference = MobileNetV3(*_mobilenet_v3_conf("mobilenet_v3_large", width_mult=width))
    assert analyze(scaled).params == sum(p.numel() for p in reference.parameters())
