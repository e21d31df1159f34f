"""The procedural `shapes` dataset: deterministic from its seed, balanced, and its three class
factors really are in the pixels."""

import pytest
import torch

from archspec.train.config import Data
from archspec.train.data import load_dataset
from archspec.train.shapes import (
    CLASS_NAMES,
    KINDS,
    LAYOUTS,
    NATIVE_SIZE,
    NUM_CLASSES,
    TEXTURES,
    make_shapes,
)

ANCHOR = 242  # the anchor's grey level (0.95); objects are 64..217, background ~31


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(640, seed=0)


def test_same_seed_same_tensors_other_seed_other(shapes):
    images, labels = shapes
    again = make_shapes(640, seed=0)
    assert torch.equal(images, again[0]) and torch.equal(labels, again[1])
    other = make_shapes(640, seed=1)
    assert not torch.equal(images, other[0]) and not torch.equal(labels, other[1])
    # a longer run starts differently (the class order depends on the count) but stays valid
    assert make_shapes(7, seed=0)[0].shape == (7, 1, NATIVE_SIZE, NATIVE_SIZE)


def test_balanced_and_typed(shapes):
    images, labels = shapes
    assert images.shape == (640, 1, 64, 64) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and NUM_CLASSES == len(CLASS_NAMES) == 32
    assert torch.bincount(labels, minlength=NUM_CLASSES).tolist() == [20] * 32
    counts = torch.bincount(make_shapes(100, seed=0)[1], minlength=NUM_CLASSES)
    assert counts.max() - counts.min() == 1 and int(counts.sum()) == 100


def test_class_names_decode_the_label():
    assert CLASS_NAMES[0] == f"{KINDS[0]}/{TEXTURES[0]}/{LAYOUTS[0]}"
    label = (KINDS.index("ring") * 2 + TEXTURES.index("checks")) * 2 + LAYOUTS.index("anchor_right")
    assert CLASS_NAMES[label] == "ring/checks/anchor_right"


def _layout(labels):
    return labels % len(LAYOUTS)


def test_the_anchor_is_on_the_side_the_label_says(shapes):
    images, labels = shapes
    x = torch.arange(NATIVE_SIZE).float()
    anchor = (images[:, 0] >= ANCHOR - 2).float()
    obj = ((images[:, 0] > 60) & (images[:, 0] < 225)).float()
    anchor_x = (anchor.sum(1) * x).sum(1) / anchor.sum((1, 2))
    obj_x = (obj.sum(1) * x).sum(1) / obj.sum((1, 2)).clamp_min(1)
    left = _layout(labels) == LAYOUTS.index("anchor_left")
    assert bool((anchor_x[left] < obj_x[left]).all())
    assert bool((anchor_x[~left] > obj_x[~left]).all())


def _texture_contrast(images, size):
    """Per image, the grey-level spread inside the object (3 pixels in from its edge), after a
    shrink to `size` (the search's antialiased resize) and back to native."""
    import torch.nn.functional as F

    from archspec.preprocess import resize

    x = images.float() / 255
    inside = ((x > 0.23) & (x < 0.87)).float()  # object pixels: 64..217
    inside = -F.max_pool2d(-inside, 7, stride=1, padding=3)
    seen = F.interpolate(resize(x, (size, size)), size=x.shape[-2:], mode="bilinear")
    count = inside.sum((1, 2, 3)).clamp_min(1)
    mean = (seen * inside).sum((1, 2, 3)) / count
    spread = (((seen - mean[:, None, None, None]) ** 2 * inside).sum((1, 2, 3)) / count).sqrt()
    return spread[inside.sum((1, 2, 3)) > 0], (inside.sum((1, 2, 3)) > 0)


def test_texture_is_fine_detail_that_fades_with_resolution(shapes):
    """The texture is in the native pixels and band-limited: shrunk to the base's 16x16 it
    keeps under 15% of its contrast, while 32x32 keeps more than twice what 16x16 does."""
    images, labels = shapes
    texture = (labels // len(LAYOUTS)) % len(TEXTURES)
    native, kept = _texture_contrast(images, NATIVE_SIZE)
    texture = texture[kept]
    assert len(texture) > 400
    small, _ = _texture_contrast(images, 16)
    larger, _ = _texture_contrast(images, 32)
    for kind in range(len(TEXTURES)):
        at = texture == kind
        assert native[at].mean() > 0.1, TEXTURES[kind]
        assert small[at].mean() < 0.15 * native[at].mean(), TEXTURES[kind]
        assert larger[at].mean() > 2 * small[at].mean(), TEXTURES[kind]


def test_registered_as_a_search_dataset():
    data = load_dataset(Data(dataset="shapes", num_samples=320), seed=0)
    assert data.num_classes == 32 and data.native_size == (64, 64)
    assert data.class_names == list(CLASS_NAMES)
    assert torch.equal(data.images, make_shapes(320, seed=0)[0])


@pytest.mark.slow
def test_the_main_job_can_show_the_method():
    """What the README's main job relies on: with its recipe, 2x the base's FLOPs spent on
    resolution (22 px) beats the base on the held-out test split by more than 3x the larger
    seed std (3 seeds each; about a minute on one core)."""
    import statistics
    from pathlib import Path

    from archspec.search.budget import fit_flops
    from archspec.search.definition.load import load_search
    from archspec.search.recipe import Recipe
    from archspec.train.loop import cpu_threads

    root = Path(__file__).resolve().parents[2]
    defn = load_search(root / "search" / "shapes_compound.yaml")
    recipe = Recipe(defn, load_dataset(defn.data, defn.seed), quiet=True)
    sharper, effective = fit_flops(defn.base_spec, 2.0, resolution=1.4)
    assert sharper.input.hw == (22, 22) and abs(effective.flops_ratio - 2) <= 0.05
    with cpu_threads(1):
        base = [recipe.score(defn.base_spec, seed).test for seed in (1, 2, 3)]
        scaled = [recipe.score(sharper, seed).test for seed in (1, 2, 3)]
    gain = statistics.mean(scaled) - statistics.mean(base)
    noise = max(statistics.stdev(base), statistics.stdev(scaled))
    assert statistics.mean(base) < 0.6  # well below the ceiling for the base
    assert gain > 3 * noise, (base, scaled)
