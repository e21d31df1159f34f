"""The proof of the scaling rules: efficientnet_b0.yaml scaled by torchvision's (width, depth)
pairs has exactly torchvision's B1..B7 parameter counts."""

import pytest
import torch
import torchvision

import archspec
from archspec.analysis import analyze
from archspec.scale import apply_preset, scale

# preset: (width, depth, resolution, parameters of torchvision's efficientnet_bN)
B = {
    "b1": (1.0, 1.1, 240, 7_794_184),
    "b2": (1.1, 1.2, 260, 9_109_994),
    "b3": (1.2, 1.4, 300, 12_233_232),
    "b4": (1.4, 1.8, 380, 19_341_616),
    "b5": (1.6, 2.2, 456, 30_389_784),
    "b6": (1.8, 2.6, 528, 43_040_704),
    "b7": (2.0, 3.1, 600, 66_347_960),
}


@pytest.fixture(scope="module")
def b0():
    return archspec.load_spec("specs/efficientnet_b0.yaml")


@pytest.mark.parametrize("name", list(B))
def test_scaled_b0_has_torchvision_parameter_count(b0, name):
    width, depth, resolution, params = B[name]
    scaled = scale(b0, width=width, depth=depth, size=resolution)
    assert analyze(scaled).params == params
    assert scaled.input.size == resolution


@pytest.mark.parametrize("name", list(B))
def test_shipped_presets_are_the_released_table(b0, name):
    width, depth, resolution, params = B[name]
    preset = b0.scaling.presets[name]
    assert (preset.width, preset.depth, preset.resolution) == (width, depth, resolution)
    assert analyze(apply_preset(b0, name)[0]).params == params


def test_create_model_with_scale_equals_torchvision_b3():
    ours = archspec.create_model("efficientnet_b0", scale="b3").eval()
    ref = torchvision.models.efficientnet_b3(weights=None).eval()
    assert sum(p.numel() for p in ours.parameters()) == 12_233_232
    archspec.load_torchvision_state_dict(ours, ref.state_dict())
    assert ours.get_submodule("classifier.0").p == 0.3  # the preset's dropout
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max().item() <= 1e-4
