"""The issue's 25 timm 1.0.31 models through the importer (pretrained=False, small inputs where
the model allows): exact, or refused with the importer's own one-line reason, listed here."""

from __future__ import annotations

import pytest
import torch

from archspec.importer import ImportSourceError, import_module
from tests.importer.test_import import check_exact

timm = pytest.importorskip("timm")

# name -> (create_model kwargs, input size)
MODELS = {
    "resnet50d": ({}, 64),
    "efficientnet_b0": ({}, 64),
    "tf_efficientnet_b0": ({}, 64),
    "mobilenetv3_large_100": ({}, 64),
    "convnext_tiny": ({}, 64),
    "regnety_016": ({}, 64),
    "ghostnet_100": ({}, 64),
    "rexnet_100": ({}, 64),
    "dla34": ({}, 64),
    "cspresnet50": ({}, 64),
    "hrnet_w18_small": ({}, 64),
    "densenet121": ({}, 64),
    "vit_small_patch16_224": ({"img_size": 64}, 64),
    "deit_tiny_patch16_224": ({"img_size": 64}, 64),
    # 112 pixels: stage 4 is 3x3 (its window shrinks to it), patch merging pads 7 to 8
    "swin_tiny_patch4_window7_224": ({"img_size": 112}, 112),
    "mixer_b16_224": ({"img_size": 64}, 64),
    "resmlp_12_224": ({"img_size": 64}, 64),
    "repvgg_a2": ({}, 64),
    "efficientformer_l1": ({}, 224),
    "levit_128": ({}, 224),
    "mobilevit_xxs": ({}, 64),
    "nf_resnet50": ({}, 64),
    "xception41": ({}, 96),
    "inception_v4": ({}, 96),
    "coat_lite_tiny": ({}, 224),
}
# the misses, each with the start of the importer's first line about it
MISSES = {
    # traced with its sizes fixed (MobileVitBlock pads or resizes on them), then its patches
    # fold the batch axis into another, which a spec's implicit batch axis cannot say
    "mobilevit_xxs": "unmapped method Tensor.reshape: 15 uses, first at stages.2.1.reshape (it "
    "folds the batch axis into another",
    # the position encodings (crpe1, cpe1) belong to the model and run inside every block
    "coat_lite_tiny": "unmapped module called from inside another module's forward",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_timm_model_imports_exactly_or_says_why(name):
    kwargs, size = MODELS[name]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    if name in MISSES:
        with pytest.raises(ImportSourceError) as caught:
            import_module(model, (3, size, size))
        assert str(caught.value.problems[0]).startswith(MISSES[name])
        return
    imported = import_module(model, (3, size, size), source=f"timm:{name}")
    check_exact(model, imported.spec, (3, size, size))


def test_the_tally():
    exact = len(MODELS) - len(MISSES)
    assert set(MISSES) <= set(MODELS) and len(MODELS) == 25
    assert exact >= 23, f"{exact} of 25 timm models import exactly"
