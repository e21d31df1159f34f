"""Receptive fields from analyze() against the input pixels one central output unit depends on."""

import pytest
import torch

import archspec
from archspec.analysis import analyze

HEAD = "name: rf\ninput: {channels: 1, size: SIZE}\nlayers:\n"

NETS = {
    "strided_convs": (
        67,
        """
  - {op: conv2d, out_channels: 2, kernel_size: 3, padding: 1}
  - {op: conv2d, out_channels: 2, kernel_size: 3, stride: 2, padding: 1}
  - {op: relu}
  - {op: conv2d, out_channels: 2, kernel_size: 5, stride: 2, padding: 2}
  - {op: conv2d, out_channels: 2, kernel_size: 3}
  - {op: conv2d, out_channels: 1, kernel_size: 4, stride: 3}
""",
    ),
    "dilated_convs": (
        81,
        """
  - {op: conv2d, out_channels: 2, kernel_size: 3, dilation: 2, padding: 2}
  - {op: conv2d, out_channels: 2, kernel_size: 3, dilation: 4, padding: same}
  - {op: batchnorm}
  - {op: conv2d, out_channels: 2, kernel_size: 3, stride: 2}
  - {op: conv2d, out_channels: 1, kernel_size: 5, dilation: 3}
""",
    ),
    "pooling": (
        71,
        """
  - {op: conv2d, out_channels: 2, kernel_size: 3, padding: 1}
  - {op: avgpool, kernel_size: 3, stride: 2, padding: 1}
  - {op: conv2d, out_channels: 2, kernel_size: 3, padding: 1}
  - {op: avgpool, kernel_size: 2}
  - {op: conv2d, out_channels: 2, kernel_size: 7, groups: 2, padding: 3}
  - {op: avgpool, kernel_size: 3, stride: 1}
""",
    ),
    "two_branches": (
        61,
        """
  - {op: conv2d, name: stem, out_channels: 4, kernel_size: 3, stride: 2, padding: 1}
  - {op: conv2d, name: a, out_channels: 4, kernel_size: 3, padding: 1}
  - {op: conv2d, name: a2, out_channels: 4, kernel_size: 3, padding: 1}
  - {op: conv2d, name: b, from: stem, out_channels: 4, kernel_size: 3, dilation: 3, padding: 3}
  - {op: add, name: sum, from: [a2, b]}
  - {op: conv2d, name: c, from: stem, out_channels: 2, kernel_size: 1}
  - {op: concat, from: [sum, c]}
  - {op: conv2d, out_channels: 1, kernel_size: 3, stride: 2, padding: 1}
""",
    ),
    # torch pads an even 'same' kernel more on the right: these branches' fields are offset,
    # so the merge sees their union, wider than either
    "offset_branches": (
        41,
        """
  - {op: conv2d, name: stem, out_channels: 2, kernel_size: 3, padding: 1}
  - {op: conv2d, name: a, out_channels: 2, kernel_size: 2, padding: same}
  - {op: conv2d, name: a2, out_channels: 2, kernel_size: 2, padding: same}
  - {op: conv2d, name: b, from: stem, out_channels: 2, kernel_size: 3, padding: 1}
  - {op: add, from: [a2, b]}
  - {op: conv2d, out_channels: 1, kernel_size: 3, stride: 2, padding: 1}
""",
    ),
}


def _positive(model: torch.nn.Module) -> torch.nn.Module:
    """Positive weights and zero biases: every path from a pixel adds a positive gradient."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.zeros_like(p) if name.endswith("bias") else torch.rand_like(p) + 0.1)
    return model.eval()


def _expected(text: str, size: int) -> tuple[range, int]:
    """Rows (= columns) the centre output unit sees per analyze(), and that unit's index."""
    report = analyze(text)
    out = report.nodes[report.outputs[0]]
    centre = out.shape.spatial[0] // 2
    rf = out.receptive_field
    middle = rf.start + centre * rf.jump  # pixel k spans [k, k+1)
    first, last = middle - rf.size / 2, middle + rf.size / 2 - 1
    assert first == int(first) and 0 <= first and last < size, "input too small for the field"
    return range(int(first), int(last) + 1), centre


def _extent(mask: torch.Tensor) -> tuple[range, range]:
    rows = mask.any(dim=1).nonzero().flatten()
    cols = mask.any(dim=0).nonzero().flatten()
    return (
        range(int(rows[0]), int(rows[-1]) + 1),
        range(int(cols[0]), int(cols[-1]) + 1),
    )


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("net", NETS)
def test_receptive_field_matches_the_gradient_support(net):
    size, layers = NETS[net]
    text = HEAD.replace("SIZE", str(size)) + layers
    expected, centre = _expected(text, size)
    model = _positive(archspec.build(text))
    x = (torch.rand(1, 1, size, size) + 0.1).requires_grad_()
    model(x)[0, 0, centre, centre].backward()
    support = x.grad[0, 0] != 0
    rows, cols = _extent(support)
    assert (rows, cols) == (expected, expected)
    inside = support[rows.start : rows.stop, cols.start : cols.stop]
    assert inside.any(dim=0).all() and inside.any(dim=1).all()  # no gap along either axis
    if net != "offset_branches":  # there: the union of two offset squares, corners missing
        assert inside.all()


def test_receptive_field_through_max_pooling():
    # max pooling passes gradient to one pixel per window, so here dependence is measured by
    # which single NaN pixel turns the centre output into NaN
    size = 29
    text = HEAD.replace("SIZE", str(size)) + (
        "  - {op: conv2d, out_channels: 2, kernel_size: 3, padding: 1}\n"
        "  - {op: maxpool, kernel_size: 3, stride: 2, padding: 1}\n"
        "  - {op: conv2d, out_channels: 1, kernel_size: 3, dilation: 2}\n"
        "  - {op: maxpool, kernel_size: 2}\n"
    )
    expected, centre = _expected(text, size)
    model = _positive(archspec.build(text))
    x = torch.rand(size * size, 1, size, size) + 0.1
    x.view(size * size, -1)[torch.arange(size * size), torch.arange(size * size)] = float("nan")
    with torch.no_grad():
        hit = model(x)[:, 0, centre, centre].isnan().view(size, size)
    assert _extent(hit) == (expected, expected)
    assert hit[expected.start : expected.stop, expected.start : expected.stop].all()


SE = """\
name: se
input: {channels: 3, size: 32}
layers:
  - {op: conv2d, name: c0, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
GATE
  - {op: conv2d, name: c1, kernel_size: 3, padding: 1}
"""
HAND = """\
  - {op: adaptive_avgpool}
  - {op: conv2d, out_channels: 2, kernel_size: 1}
  - {op: relu}
  - {op: conv2d, out_channels: 8, kernel_size: 1}
  - {op: sigmoid, name: gate}
  - {op: mul, name: scaled, from: [c0, gate]}"""
BUILT_IN = "  - {op: squeeze_excitation, name: scaled, squeeze_channels: 2}"


def test_a_hand_written_squeeze_excite_gate_keeps_the_feature_map_s_field_and_stride():
    hand = analyze(SE.replace("GATE", HAND))
    built_in = analyze(SE.replace("GATE", BUILT_IN))
    for name in ("scaled", "c1"):
        assert hand.nodes[name].receptive_fields == built_in.nodes[name].receptive_fields
    assert hand.nodes["c1"].receptive_field.jump == 2  # the conv's stride, not the pool's 16
    model = archspec.build(SE.replace("GATE", HAND), features_only=True)
    assert model.feature_info.reduction() == [2]
