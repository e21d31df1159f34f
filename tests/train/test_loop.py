"""The training loop's device choice: CUDA when present."""

import torch


def test_cuda_is_used_when_present():
    from archspec.train.loop import pick_device

    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu").type == "cpu"
