"""Families the language had no words for, written in it and checked against torchvision's
hand-written modules on the same weights: Inception v3's factorised 7x7 module (1x7 and 7x1
convolutions) and ShuffleNet V2's units (channel split, shuffle)."""

import pytest
import torch
from torchvision.models import inception, shufflenetv2

import archspec

INCEPTION_C = """
name: inception_c
input: {channels: 16, size: 9}
blocks:
  basic_conv:                 # torchvision's BasicConv2d: conv (no bias), bn, relu
    params:
      out_channels: channels
      kernel_size: {type: pair, default: 1}      # an int or [h, w]
      padding: {type: pair, default: 0}
    layers:
      - op: conv2d
        name: conv
        out_channels: $out_channels
        kernel_size: $kernel_size
        padding: $padding
        bias: false
      - {op: batchnorm, name: bn, eps: 0.001}
      - {op: relu}
layers:
  - {block: basic_conv, name: branch1x1, args: {out_channels: 192}}
  - {block: basic_conv, name: branch7x7_1, from: input, args: {out_channels: 8}}
  - {block: basic_conv, name: branch7x7_2, args: {out_channels: 8, kernel_size: [1, 7], padding: [0, 3]}}
  - {block: basic_conv, name: branch7x7_3, args: {out_channels: 192, kernel_size: [7, 1], padding: [3, 0]}}
  - {block: basic_conv, name: branch7x7dbl_1, from: input, args: {out_channels: 8}}
  - {block: basic_conv, name: branch7x7dbl_2, args: {out_channels: 8, kernel_size: [7, 1], padding: [3, 0]}}
  - {block: basic_conv, name: branch7x7dbl_3, args: {out_channels: 8, kernel_size: [1, 7], padding: [0, 3]}}
  - {block: basic_conv, name: branch7x7dbl_4, args: {out_channels: 8, kernel_size: [7, 1], padding: [3, 0]}}
  - {block: basic_conv, name: branch7x7dbl_5, args: {out_channels: 192, kernel_size: [1, 7], padding: [0, 3]}}
  - {op: avgpool, name: pool, from: input, kernel_size: 3, stride: 1, padding: 1}
  - {block: basic_conv, name: branch_pool, args: {out_channels: 192}}
  - {op: concat, from: [branch1x1, branch7x7_3, branch7x7dbl_5, branch_pool]}
"""


def _randomize_batchnorm(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


def _same_outputs(model: torch.nn.Module, reference: torch.nn.Module, dims) -> None:
    _randomize_batchnorm(reference)
    model.load_state_dict(reference.state_dict())  # by name: the spec uses torchvision's names
    model.eval(), reference.eval()
    x = torch.randn(2, *dims)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_inception_v3_factorised_module_is_torchvisions_inception_c():
    model = archspec.build(INCEPTION_C)
    reference = inception.InceptionC(16, channels_7x7=8)
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    _same_outputs(model, reference, (16, 9, 9))
    report = archspec.analyze(INCEPTION_C)
    conv = report.nodes["branch7x7_2.conv"]
    assert conv.params == 8 * 8 * 7 and conv.macs == 8 * 9 * 9 * 8 * 7
    # a 1x7 then a 7x1 convolution see 7x7 pixels; 7x1, 1x7, 7x1, 1x7 see 13x13
    assert [rf.size for rf in conv.receptive_fields] == [1, 7]
    fields = report.nodes["branch7x7dbl_5.conv"].receptive_fields
    assert [rf.size for rf in fields] == [13, 13]


def test_pair_parameters_say_what_they_take():
    bad = INCEPTION_C.replace(
        "kernel_size: [1, 7], padding: [0, 3]}}", "kernel_size: [1, 7, 1]}}", 1
    )
    with pytest.raises(
        archspec.GraphError, match=r"kernel_size: expected an int or \[h, w\], got \[1, 7, 1\]"
    ):
        archspec.build_graph(bad)
    conv = "  - {op: conv2d, kernel_size: KERNEL}\n"
    head = "name: k\ninput: {channels: 3, size: 9}\nlayers:\n"
    with pytest.raises(
        archspec.SpecError, match=r"conv2d.kernel_size: kernel_size takes an int or \[h, w\]"
    ):
        archspec.build_graph(head + conv.replace("KERNEL", "[1, 7, 1]"))
    with pytest.raises(archspec.SpecError, match=r"kernel_size takes values from 1 to 1024"):
        archspec.build_graph(head + conv.replace("KERNEL", "[0, 3]"))


SHUFFLE_UNIT = """
name: shuffle_unit                 # ShuffleNet V2's unit at stride 1 (Ma et al. 2018, fig. 3c)
input: {channels: 16, size: 8}
layers:
  - {op: chunk, name: halves, chunks: 2}
  - name: branch2                  # the second half goes through the branch ...
    from: halves.1
    layers:
      - {op: conv2d, kernel_size: 1, bias: false}
      - {op: batchnorm}
      - {op: relu}
      - {op: conv2d, kernel_size: 3, padding: 1, groups: depthwise, bias: false}
      - {op: batchnorm}
      - {op: conv2d, kernel_size: 1, bias: false}
      - {op: batchnorm}
      - {op: relu}
  - {op: concat, from: [halves.0, branch2]}   # ... the first half is kept as it is
  - {op: channel_shuffle, groups: 2}
"""

SHUFFLE_DOWN = """
name: shuffle_down                 # ShuffleNet V2's unit at stride 2 (fig. 3d)
input: {channels: 16, size: 8}
layers:
  - name: branch1
    layers:
      - {op: conv2d, kernel_size: 3, stride: 2, padding: 1, groups: depthwise, bias: false}
      - {op: batchnorm}
      - {op: conv2d, out_channels: 16, kernel_size: 1, bias: false}
      - {op: batchnorm}
      - {op: relu}
  - name: branch2
    from: input
    layers:
      - {op: conv2d, out_channels: 16, kernel_size: 1, bias: false}
      - {op: batchnorm}
      - {op: relu}
      - {op: conv2d, kernel_size: 3, stride: 2, padding: 1, groups: depthwise, bias: false}
      - {op: batchnorm}
      - {op: conv2d, kernel_size: 1, bias: false}
      - {op: batchnorm}
      - {op: relu}
  - {op: concat, from: [branch1, branch2]}
  - {op: channel_shuffle, groups: 2}
"""


@pytest.mark.parametrize(
    ("text", "stride", "out_channels"), [(SHUFFLE_UNIT, 1, 16), (SHUFFLE_DOWN, 2, 32)]
)
def test_shufflenet_v2_units_are_torchvisions_inverted_residual(text, stride, out_channels):
    model = archspec.build(text)
    reference = shufflenetv2.InvertedResidual(16, out_channels, stride)
    _same_outputs(model, reference, (16, 8, 8))
    assert archspec.analyze(text).params == sum(p.numel() for p in reference.parameters())


def test_split_parts_are_read_by_index():
    text = """
name: parts
input: {channels: 12, size: 4}
layers:
  - {op: split, name: thirds, sizes: [2, 4, 6]}
  - {op: conv2d, name: a, from: thirds.2, out_channels: 2, kernel_size: 1}
  - {op: concat, name: out, from: [thirds.0, a, thirds.1]}
"""
    graph = archspec.build_graph(text)
    assert graph.shape("thirds.1").dims == (4, 4, 4)
    assert graph.shape("out").dims == (8, 4, 4)
    model = archspec.build(text)
    x = torch.randn(1, 12, 4, 4)
    y = model(x)
    assert torch.equal(y[:, :2], x[:, :2]) and torch.equal(y[:, 4:], x[:, 2:6])
