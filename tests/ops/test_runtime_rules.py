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


@pytest.mark.parametrize("size", [40, 64])
def test_narrow_strided_1x1_conv_trains_channels_last_and_equals_torchs(size):
    """oneDNN 3.12 (torch 2.14.1, AVX-512 CPUs) corrupts memory in the weight gradient of a
    channels-last 1x1 stride-2 conv with <= 8 input channels on inputs of 46+ px: archspec
    emits it as the same conv on every second pixel. Same outputs and gradients as torch's
    strided conv (computed here in NCHW, which does not crash), and training does not crash."""
    text = (
        f"name: t\ninput: {{channels: 8, size: {size}}}\nlayers:\n"
        "  - {op: conv2d, name: down, out_channels: 16, kernel_size: 1, stride: 2, bias: false}\n"
    )
    model = archspec.build(archspec.load_spec(text))
    sampled = "getitem" in model.code
    assert sampled == (size > 40)
    reference = torch.nn.Conv2d(8, 16, 1, stride=2, bias=False)
    reference.weight.data.copy_(model.state_dict()["down.weight"])
    torch.manual_seed(0)
    x = torch.randn(4, 8, size, size)
    expect = reference(x)
    expect.square().sum().backward()
    model = model.to(memory_format=torch.channels_last)
    got = model(x.contiguous(memory_format=torch.channels_last))
    got.square().sum().backward()
    assert torch.allclose(got, expect, atol=1e-5)
    grad = dict(model.named_parameters())["down.weight"].grad
    assert torch.allclose(grad, reference.weight.grad, rtol=1e-4, atol=1e-4)
