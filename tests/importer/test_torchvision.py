"""Every torchvision classification builder through `archspec import`: exact (parameters,
identical state_dict names, outputs equal on a small input in eval mode), or refused with the
one error the importer gives for it. The largest variants (each a bigger copy of a family tested
here; 60-115 s apiece on a loaded machine) run with ARCHSPEC_IMPORT_ALL=1: all 80 passed so."""

from __future__ import annotations

import os

import pytest
import torch
import torchvision

from archspec.importer import ImportSourceError, import_module
from tests.importer.test_import import check_exact

NAMES = torchvision.models.list_models(module=torchvision.models)
# builder arguments: no auxiliary heads (their weights are unused in eval mode; with them the
# importer says so), ViTs at a small image size (their position table follows it)
KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "init_weights": False},
    **{n: {"image_size": 32} for n in NAMES if n.startswith("vit_") and n != "vit_h_14"},
    "vit_h_14": {"image_size": 28},
}
SIZE = {"inception_v3": 80, "maxvit_t": 224, "vit_h_14": 28}
# not importable yet, each with the start of the importer's own one-line reason
REFUSED: dict[str, str] = {}


HEAVY = {"regnet_y_128gf", "regnet_y_32gf", "regnet_y_16gf", "regnet_x_32gf", "vit_h_14"}
HEAVY |= {"vit_l_16", "vit_l_32", "convnext_large", "efficientnet_v2_l", "resnet152"}
HEAVY |= {"swin_s", "swin_b", "swin_v2_s", "swin_v2_b"}  # deeper, wider swin_t / swin_v2_t


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_torchvision_builder_imports_exactly(name):
    if name in HEAVY and not os.environ.get("ARCHSPEC_IMPORT_ALL"):
        pytest.skip("a larger copy of a family tested here (ARCHSPEC_IMPORT_ALL=1 runs it)")
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, **KWARGS.get(name, {})).eval()
    size = SIZE.get(name, 32 if name.startswith("vit_") else 64)
    if name in REFUSED:
        with pytest.raises(ImportSourceError) as caught:
            import_module(model, (3, size, size))
        assert str(caught.value.problems[0]).startswith(REFUSED[name])
        return
    imported = import_module(model, (3, size, size), source=f"torchvision:{name}")
    check_exact(model, imported.spec, (3, size, size))


def test_the_list_is_what_torchvision_builds():
    assert len(NAMES) >= 70 and "resnet50" in NAMES
    assert set(REFUSED) <= set(NAMES)
