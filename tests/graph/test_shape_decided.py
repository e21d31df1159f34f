"""Structure decided by shapes: `when`, `repeat` and parameter defaults reading the block input."""

import re
import textwrap
from pathlib import Path

import pytest
import torch

import archspec
from archspec.errors import GraphError

# torchvision's BasicBlock rule, written once: a projection shortcut where the stride or the
# channels change. No stage needs a `first:` override for it.
RESNET18_AUTO = """\
name: resnet18_auto
input: {channels: 3, size: 224, size_multiple: 32}
options:
  num_classes: {type: int, default: 1000}
blocks:
  basic:
    params:
      out_channels: channels
      stride: {type: int, default: 1}
      downsample: {type: bool, default: "${stride != 1 or in_channels != out_channels}"}
    layers:
      - {op: conv2d, name: conv1, out_channels: $out_channels, kernel_size: 3, stride: $stride, padding: 1, bias: false}
      - {op: batchnorm, name: bn1}
      - {op: relu}
      - {op: conv2d, name: conv2, out_channels: $out_channels, kernel_size: 3, padding: 1, bias: false}
      - {op: batchnorm, name: bn2}
      - name: downsample
        when: $downsample
        from: input
        layers:
          - {op: conv2d, out_channels: $out_channels, kernel_size: 1, stride: $stride, bias: false}
          - {op: batchnorm}
      - {op: add, from: [bn2, downsample]}
      - {op: relu}
layers:
  - {op: conv2d, name: conv1, out_channels: 64, kernel_size: 7, stride: 2, padding: 3, bias: false}
  - {op: batchnorm, name: bn1}
  - {op: relu, name: relu}
  - {op: maxpool, name: maxpool, kernel_size: 3, stride: 2, padding: 1}
  - {block: basic, name: layer1, repeat: 2, args: {out_channels: 64}}
  - {block: basic, name: layer2, repeat: 2, args: {out_channels: 128}, first: {stride: 2}}
  - {block: basic, name: layer3, repeat: 2, args: {out_channels: 256}, first: {stride: 2}}
  - {block: basic, name: layer4, repeat: 2, args: {out_channels: 512}, first: {stride: 2}}
  - {op: adaptive_avgpool, name: avgpool}
  - {op: flatten}
  - {op: linear, name: fc, out_features: $num_classes}
"""

# MobileNetV2 / EfficientNet: residual when the stride is 1 and the channels match
TORCHVISION_RULE = 'when: "${stride == 1 and in_channels == out_channels}"'


def _records(graph):
    return [(n.name, n.op, n.inputs, n.shape) for n in graph]


def test_projection_shortcut_decided_by_channels_matches_resnet18():
    auto = archspec.build_graph(RESNET18_AUTO)
    shipped = archspec.build_graph("specs/resnet18.yaml")
    assert _records(auto) == _records(shipped)
    assert "layer1.0.downsample.0" not in auto and "layer2.0.downsample.0" in auto
    assert "layer2.1.downsample.0" not in auto
    # the width multiplier keeps the rule right: channels are compared after scaling
    half = archspec.scale(archspec.load_spec(RESNET18_AUTO), width=0.5)
    assert (
        archspec.analyze(half).params
        == archspec.analyze(
            archspec.scale(archspec.load_spec("specs/resnet18.yaml"), width=0.5)
        ).params
    )


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0"])
def test_residual_when_stride_1_and_channels_match(name):
    text = Path(f"specs/{name}.yaml").read_text()
    assert 'when: "${index > 0}"' in text
    auto = text.replace('when: "${index > 0}"', TORCHVISION_RULE)
    # the rule reads the block's stride and input; efficientnet's stochastic depth, whose p
    # reads depth_total, is in the graph that decides it
    assert _records(archspec.build_graph(auto)) == _records(archspec.build_graph(text))


def test_input_size_decides_structure():
    text = """\
name: pyramid
input: {channels: 3, size: 64}
blocks:
  down:
    layers:
      - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
      - {op: maxpool, kernel_size: 2, stride: 2, when: "${in_height > 8 and in_width > 8}"}
layers:
  - {block: down, name: stages, repeat: 5}
  - {op: adaptive_avgpool}
"""
    graph = archspec.build_graph(text)
    pools = [n.name for n in graph if n.op.op == "maxpool"]
    assert pools == ["stages.0.1", "stages.1.1", "stages.2.1"]  # 64 -> 32 -> 16 -> 8, then kept
    assert graph["stages.4.0"].shape.dims == (8, 8, 8)


def test_repeat_read_from_the_input():
    text = """\
name: r
input: {channels: 4, size: 8}
layers:
  - {op: conv2d, out_channels: 3, kernel_size: 1}
  - name: g
    repeat: "${in_channels}"
    layers: [{op: relu}]
"""
    # `repeat` is evaluated where it is written: at the top level in_channels is the model's
    assert [n.name for n in archspec.build_graph(text)][1:] == ["g.0.0", "g.1.0", "g.2.0", "g.3.0"]


def test_structure_reading_a_later_shape_is_reported_once_with_its_count():
    text = """\
name: cyc
input: {channels: 3, size: 8}
blocks:
  b:
    layers:
      - {op: conv2d, out_channels: 8, kernel_size: 1}
      - {op: relu, when: "${in_channels == 8}"}
layers:
  - {op: conv2d, name: stem, out_channels: 8, kernel_size: 1}
  - {block: b, name: body, from: tail, repeat: 4}
  - {op: conv2d, name: tail, out_channels: 8, kernel_size: 1, from: stem}
"""
    with pytest.raises(GraphError) as info:
        archspec.build_graph(text)
    problems = [p for p in info.value.problems if "defined later" in p.message]
    assert len(problems) == 1
    assert problems[0].location.line == 7
    assert "needs the shape of 'tail', which is defined later" in problems[0].message
    assert problems[0].message.endswith("(in 4 instances)")


def test_depth_total_in_when_is_reported_once_with_its_count():
    text = """\
name: dt
input: {channels: 3, size: 8}
blocks:
  b:
    layers:
      - {op: relu, when: "${depth_index < depth_total}"}
layers:
  - {op: conv2d, out_channels: 8, kernel_size: 1}
  - {block: b, repeat: 16}
"""
    with pytest.raises(GraphError) as info:
        archspec.build_graph(text)
    assert len(info.value.problems) == 1
    problem = info.value.problems[0]
    assert problem.location.line == 6
    assert "depth_total is only known after expansion" in problem.message
    assert problem.message.endswith("(in 16 instances)")


def test_the_readme_example_as_written():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "residual_rule" in b]
    graph = archspec.build_graph(textwrap.dedent(block))
    adds = [n.place.instance for n in graph if n.op.op == "add"]
    assert adds == ["stage1.0", "stage1.1", "stage2.1", "stage2.2"]


def test_a_switched_off_item_with_its_own_from_does_not_redirect_the_flow():
    # the shortcut (from: input) and the add are off in the first repeat: the instance's output
    # is its conv, not its input (it was: 's.1.2: cannot add (16,32,32) and (24,32,32)')
    text = textwrap.dedent("""\
        name: trailing_switch
        input: {channels: 16, size: 8}
        blocks:
          b:
            params:
              out_channels: channels
              shortcut: {type: bool, default: true}
            layers:
              - {op: conv2d, name: conv, out_channels: $out_channels, kernel_size: 3, padding: 1}
              - {op: identity, name: shortcut, from: input, when: $shortcut}
              - {op: add, from: [shortcut, conv], when: $shortcut}
        layers:
          - {block: b, name: s, repeat: 2, args: {out_channels: 24}, first: {shortcut: false}}
        """)
    graph = archspec.build_graph(archspec.load_spec(text))
    assert graph.parts["s.0"].output == "s.0.conv"
    assert set(graph.digraph.predecessors("s.1.shortcut")) == {"s.0.conv"}
    model = archspec.build(archspec.load_spec(text)).eval()
    assert model(torch.randn(1, 16, 8, 8)).shape == (1, 24, 8, 8)
