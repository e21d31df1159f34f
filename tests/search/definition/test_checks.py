"""Search definitions fail at load, located, for every value that used to fail only at run
time: data.limit below the classes, unknown torchvision names, step grids too fine to sample;
a missing device is one line when the search starts."""

from pathlib import Path

import pytest
import torch

from archspec.errors import SearchError
from archspec.search import load_search
from archspec.train.loop import pick_device

BASE = Path(__file__).resolve().parents[3] / "search" / "bases" / "tiny_resnet.yaml"
HEAD = f"study: t\nbase: {BASE}\nmode: free\n"


def problems(tmp_path, body: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + body)
    with pytest.raises(SearchError) as info:
        load_search(path)
    return [str(p).replace(f"{path}:", "") for p in info.value.problems]


def test_limit_below_the_classes(tmp_path):
    assert problems(
        tmp_path, "space: {width: [0.5, 1.0]}\ndata: {dataset: digits, limit: 12}\n"
    ) == [
        "5:32: data.limit: 12 samples cannot be split into train, validation and test with each "
        "of the 10 classes in every part (the smallest part is 0.2 of the data); use at least 50"
    ]


def test_synthetic_samples_below_the_classes(tmp_path):
    body = "space: {width: [0.5, 1.0]}\ndata: {dataset: synthetic, num_classes: 100, num_samples: 300}\n"
    assert problems(tmp_path, body)[0].startswith(
        "5:59: data.num_samples: 300 samples cannot be split"
    )


def test_torchvision_name_that_is_not_a_dataset(tmp_path):
    body = "space: {width: [0.5, 1.0]}\ndata: {dataset: 'torchvision:Foo'}\n"
    assert problems(tmp_path, body) == [
        "5:17: data.dataset: torchvision:Foo: unknown torchvision dataset 'Foo'; did you mean "
        "Food101? (got 'torchvision:Foo')"
    ]


@pytest.mark.parametrize(("step", "values"), [("1e-300", "3e+299"), ("1e-05", "30,001")])
def test_step_too_small(tmp_path, step, values):
    found = problems(tmp_path, f"space: {{width: {{low: 1.0, high: 1.3, step: {step}}}}}\n")
    assert [line.split(" (got ")[0] for line in found] == [
        f"4:16: space.width: step {step} gives {values} values from 1 to 1.3; at most 10,000 "
        "(use a larger step)"
    ]


def test_grid_too_large_for_the_grid_sampler(tmp_path):
    body = (
        "space:\n  depth: {low: 1.0, high: 2.0, step: 0.001}\n"
        "  width: {low: 1.0, high: 2.0, step: 0.001}\n"
        "  resolution: {low: 1.0, high: 2.0, step: 0.001}\n"
        "sampler: grid\n"
    )
    assert problems(tmp_path, body) == [
        "5:3: space: the grid has 1e+09 points; the grid sampler enumerates at most "
        "1,000,000 (use larger steps or fewer kernel choices)"
    ]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_without_a_gpu_is_one_line():
    with pytest.raises(SearchError) as info:
        pick_device("cuda")
    assert str(info.value) == "training.device: no CUDA device; use device: auto or cpu"
    assert pick_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("step", ["0.3", "5"])
def test_a_step_that_does_not_divide_the_range(tmp_path, step):
    """Optuna would warn and silently shrink the range to what the step reaches."""
    found = problems(tmp_path, f"space: {{width: {{low: 0.5, high: 1.0, step: {step}}}}}\n")
    assert [line.split(" (got ")[0] for line in found] == [
        f"4:16: space.width: step {step} does not divide the range 0.5..1 (a span of 0.5): 1 "
        "would never be tried; use a step that divides it"
    ]


def test_image_size_is_bounded(tmp_path):
    body = "space: {width: [0.5, 1.0]}\ndata: {dataset: 'imagefolder:x', image_size: 100000}\n"
    assert [line.split(" (got ")[0] for line in problems(tmp_path, body)] == [
        "5:46: data.image_size: input should be less than or equal to 4096"
    ]
