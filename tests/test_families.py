"""Families the language had no words for, written in it and checked against torchvision's
hand-written modules on the same weights: Inception v3's factorised 7x7 module (1x7 and 7x1
convolutions) and ShuffleNet V2's units (channel split, shuffle)."""

import torch
from torchvision.models import inception

import archspec

INCEPTION_C = """
name: inception_c
input: {channels: 16, size: 9}
blocks:
  basic_conv:                 # torchvision's BasicConv2d: conv (no bias), bn, relu
    params:
      out_channels: channels
      kh: int
      kw: int
    layers:
      - op: conv2d
        name: conv
        out_channels: $out_channels
        kernel_size: [$kh, $kw]
        padding: ["${kh // 2}", "${kw // 2}"]
        bias: false
      - {op: batchnorm, name: bn, eps: 0.001}
      - {op: relu}
layers:
  - {block: basic_conv, name: branch1x1, args: {out_channels: 192, kh: 1, kw: 1}}
  - {block: basic_conv, name: branch7x7_1, from: input, args: {out_channels: 8, kh: 1, kw: 1}}
  - {block: basic_conv, name: branch7x7_2, args: {out_channels: 8, kh: 1, kw: 7}}
  - {block: basic_conv, name: branch7x7_3, args: {out_channels: 192, kh: 7, kw: 1}}
  - {block: basic_conv, name: branch7x7dbl_1, from: input, args: {out_channels: 8, kh: 1, kw: 1}}
  - {block: basic_conv, name: branch7x7dbl_2, args: {out_channels: 8, kh: 7, kw: 1}}
  - {block: basic_conv, name: branch7x7dbl_3, args: {out_channels: 8, kh: 1, kw: 7}}
  - {block: basic_conv, name: branch7x7dbl_4, args: {out_channels: 8, kh: 7, kw: 1}}
  - {block: basic_conv, name: branch7x7dbl_5, args: {out_channels: 192, kh: 1, kw: 7}}
  - {op: avgpool, name: pool, from: input, kernel_size: 3, stride: 1, padding: 1}
  - {block: basic_conv, name: branch_pool, args: {out_channels: 192, kh: 1, kw: 1}}
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
