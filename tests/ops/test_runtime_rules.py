"""Runtime rules of torch checked statically: a spec validates exactly when its forward runs."""

import itertools

import pytest
import torch

import archspec
from archspec.errors import GraphError


def conv_spec(size: int, mode: str, padding: str, kernel: int = 1) -> str:
    return (
        f"name: t\ninput: {{channels: 1, size: {size}}}\nlayers:\n"
        f"  - {{op: conv2d, kernel_size: {kernel}, padding: {padding}, padding_mode: {mode}}}\n"
    )


CASES = [
    (mode, size, str(pad), 1)
    for mode, size, pad in itertools.product(["reflect", "circular"], [2, 3], [1, 2, 3, 4])
] + [
    (mode, size, "same", kernel)
    for mode, size, kernel in itertools.product(["reflect", "circular"], [1, 2], [2, 4, 6])
]


@pytest.mark.parametrize(("mode", "size", "padding", "kernel"), CASES)
def test_padding_mode_limits_match_torch(mode, size, padding, kernel):
    text = conv_spec(size, mode, padding, kernel)
    pad = int(padding) if padding != "same" else padding
    try:
        with torch.no_grad():
            torch.nn.Conv2d(1, 1, kernel, padding=pad, padding_mode=mode)(
                torch.zeros(1, 1, size, size)
            )
        runs = True
    except RuntimeError:
        runs = False
    try:
        archspec.build_graph(text)
        validates = True
    except GraphError:
        validates = False
    assert validates == runs


def test_reflect_padding_is_located():
    with pytest.raises(GraphError) as info:
        archspec.build_graph(conv_spec(2, "reflect", "2"))
    assert str(info.value) == (
        "<spec>:4:5: node 0: padding_mode reflect pads each side by less than the input size; "
        "got padding 2 on the 2x2 input"
    )
