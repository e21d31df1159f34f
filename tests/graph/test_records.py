"""The graph contract: typed node records with their place, parts, networkx view, pruning."""

import re
from pathlib import Path

import networkx as nx
import pytest

import archspec
from archspec.graph import INPUT, ArchGraph, Node, Place
from archspec.ops import REGISTRY
from archspec.ops.base import Op
from archspec.scaling.rewrite import scale

SKIPPED_FIRST = """\
name: skipped
input: {channels: 3, size: 16}
blocks:
  dw:
    params: {kernel: {type: kernel, default: 3}}
    layers:
      - {op: conv2d, name: conv, kernel_size: $kernel, padding: same, groups: depthwise}
      - {op: relu}
layers:
  - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: relu, when: false}
  - {block: dw, repeat: 2}
  - layers:
      - {op: conv2d, out_channels: 4, kernel_size: 1}
      - {op: relu}
"""


def test_records_carry_op_inputs_shapes_and_location():
    graph = archspec.build_graph("specs/resnet18.yaml")
    assert isinstance(graph, ArchGraph)
    node = graph["layer2.0.downsample.0"]
    assert isinstance(node, Node) and node.op.op == "conv2d"
    assert node.inputs == ("layer1.1.6",)
    assert node.input_shapes == (graph.shape("layer1.1.6"),)
    assert node.shape.dims == (128, 28, 28)
    assert node.location.line == 24 and node.location.file == "specs/resnet18.yaml"
    assert node.path == ("blocks", "basic", "layers", 5, "layers", 0)
    assert graph.shape(INPUT).dims == (3, 224, 224)
    assert graph.users("layer1.1.6") == ["layer2.0.conv1", "layer2.0.downsample.0"]
    assert [n.name for n in graph][:4] == ["conv1", "bn1", "relu", "maxpool"]
    assert graph.outputs == ("fc",) and len(graph) == 69


def test_place_is_recorded_during_expansion():
    graph = archspec.build_graph("specs/efficientnet_b0.yaml")
    assert graph["features.0.0"].place == Place("features.0", "features.0")
    assert graph["features.6.3.block.1.0"].place == Place("features.6", "features.6.3", "mbconv", 3)
    assert graph["avgpool"].place == Place("avgpool", "avgpool")
    assert graph["classifier.1"].place == Place("classifier", "classifier")
    googlenet = archspec.build_graph("specs/googlenet.yaml")
    assert googlenet["inception3a.branch1.conv"].place == Place(
        "inception3a", "inception3a", "inception", None
    )


def test_unnamed_items_are_numbered_alike_everywhere():
    # the switched-off relu takes no number: the stage is `1`, as its nodes are named
    graph = archspec.build_graph(SKIPPED_FIRST)
    assert graph["1.1.conv"].place == Place("1", "1.1", "dw", 1)
    assert graph["2.0"].place == Place("2", "2")
    scaled = archspec.build_graph(scale(archspec.load_spec(SKIPPED_FIRST), kernels={"1": 5}))
    assert [scaled[f"1.{i}.conv"].op.kernel_size for i in (0, 1)] == [5, 5]


def test_parts_name_every_expanded_item():
    graph = archspec.build_graph("specs/resnet18.yaml")
    assert graph.parts["layer3"].output == "layer3.1.6"
    assert graph.parts["layer3.0"].output == "layer3.0.7"
    assert graph.parts["layer3"].kind == "block" and graph.parts["layer3.0.conv1"].kind == "op"
    assert graph.parts["layer3"].path == ("layers", 6)


def test_networkx_view():
    graph = archspec.build_graph("specs/resnet18.yaml")
    g = graph.digraph
    assert isinstance(g, nx.DiGraph) and g.number_of_nodes() == len(graph) + 1
    assert g.nodes["fc"]["shape"].dims == (1000,) and g.nodes["fc"]["node"] is graph["fc"]
    assert g.nodes[INPUT]["op"] is None
    order = list(nx.topological_sort(g))
    assert order[0] == INPUT and order[-1] == "fc"
    assert g.has_edge("layer1.1.6", "layer2.0.downsample.0")


def test_with_outputs_prunes_what_does_not_feed_them():
    graph = archspec.build_graph("specs/resnet18.yaml")
    backbone = graph.with_outputs(["layer2", "layer3"])
    assert backbone.outputs == ("layer2.1.6", "layer3.1.6")
    assert backbone.output_names == ("layer2", "layer3")
    assert "layer4.0.conv1" not in backbone and "fc" not in backbone and len(backbone) == 50
    assert "fc" not in backbone.digraph
    with pytest.raises(archspec.GraphError, match="unknown layer 'layer5'; did you mean layer"):
        graph.with_outputs(["layer5"])


def test_in_place_ops_implement_emit_in_place():
    in_place = [cls for cls in REGISTRY.values() if cls.in_place]
    assert {c.op for c in in_place} >= {"relu", "silu", "add"}
    for cls in in_place:
        assert cls.emit_in_place is not Op.emit_in_place, cls.op


def test_the_readme_graph_example_as_written(capsys):
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    [block] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "graph.parts" in b]
    exec(block, {})  # the README's code, as written
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "conv2d ('layer1.1.6',) (128,28,28)"
    assert printed[1] == "specs/resnet18.yaml:15:9"
    assert printed[2] == "Place(stage='layer2', instance='layer2.0', block='basic', repeat=0)"
    assert printed[3] == "layer2.1.6"
