"""Backbones: named intermediate outputs, timm's features_only, feature_info from static shapes,
checked against torchvision's create_feature_extractor on the same weights."""

import json
import re
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor

import archspec
from archspec.errors import GraphError

# name -> (torchvision builder kwargs, test input size, our feature maps, torchvision's nodes
# for them where its module names differ from the spec's)
STAGES = ["relu", "layer1", "layer2", "layer3", "layer4"]
EFFICIENT = ["features.1", "features.2", "features.3", "features.5", "features"]
VGG = [f"features.block{i}" for i in range(1, 6)] + ["avgpool"]
CNNS = {
    "resnet18": ({}, 64, STAGES, None),
    "resnet50": ({}, 64, STAGES, None),
    "alexnet": ({}, 63, ["features.1", "features.4", "features.11", "avgpool"], None),
    "vgg16": ({}, 32, VGG, [f"features.{i}" for i in (3, 8, 15, 22, 29)] + ["avgpool"]),
    "vgg16_bn": ({}, 32, VGG, [f"features.{i}" for i in (5, 12, 22, 32, 42)] + ["avgpool"]),
    "googlenet": (
        {"aux_logits": False, "init_weights": False},
        64,
        ["conv1", "conv3", "inception3b", "inception4e", "inception5b"],
        None,
    ),
    "densenet121": (
        {},
        64,
        ["features.relu0"] + [f"features.denseblock{i}" for i in (1, 2, 3)] + ["relu"],
        None,
    ),
    "mobilenet_v2": (
        {},
        64,
        EFFICIENT,
        ["features.1", "features.3", "features.6", "features.13", "features"],
    ),
    "mobilenet_v3_large": (
        {},
        64,
        ["features.1", "features.3", "features.6", "features.12", "features"],
        None,
    ),
    "efficientnet_b0": ({}, 64, EFFICIENT, None),
    "convnext_tiny": ({}, 64, ["features.1", "features.3", "features.5", "features"], None),
    "shufflenet_v2_x1_0": ({}, 64, ["conv1", "maxpool", "stage2", "stage3", "conv5"], None),
}
SLOW = {"alexnet", "vgg16", "vgg16_bn", "densenet121", "convnext_tiny"}
TRANSFORMERS = {"vit_b_16", "swin_t", "swin_v2_t", "maxvit_t"}


def test_every_zoo_cnn_is_checked():
    assert set(archspec.list_specs()) - TRANSFORMERS <= set(CNNS) | {"tiny"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CNNS]
)
def test_features_match_torchvision_feature_extractor(name):
    kwargs, size, maps, nodes = CNNS[name]
    nodes = nodes or maps
    reference = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
    model = archspec.create_model(name, features_only=True).eval()
    # the head is pruned: the backbone's tensors are the first ones, in forward order
    weights = list(reference.state_dict().items())
    assert len(model.state_dict()) < len(weights)
    archspec.load_torchvision_state_dict(model, dict(weights[: len(model.state_dict())]))
    info = model.feature_info
    assert info.module_name() == maps
    extractor = create_feature_extractor(reference, return_nodes=nodes).eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        ours, theirs = model(x), extractor(x)
    assert isinstance(ours, list) and len(ours) == len(maps)
    for feature, got, module in zip(info, ours, nodes, strict=True):
        expected = theirs[module]
        assert got.shape == expected.shape, module
        assert (got - expected).abs().max().item() <= 1e-4, module
        assert feature.channels == got.shape[1]
        # the nominal stride; alexnet's unpadded 11x11/4 and 3x3/2 windows do not divide 63,
        # and avgpool pools to a fixed size (6x6, 7x7) whatever the input
        if name != "alexnet" and module != "avgpool":
            assert feature.reduction == round(size / got.shape[-1]), module


BACKBONE = """\
name: backbone
input: {channels: 3, size: 32}
blocks:
  stage:
    params: {out_channels: channels, stride: {type: int, default: 2}}
    layers:
      - {op: conv2d, out_channels: $out_channels, kernel_size: 3, stride: $stride, padding: 1}
      - {op: batchnorm}
      - {op: relu}
layers:
  - {block: stage, name: s1, args: {out_channels: 8, stride: 1}}
  - {block: stage, name: s2, args: {out_channels: 16}}
  - {block: stage, name: s3, args: {out_channels: 32}}
  - {op: adaptive_avgpool, name: pool}
  - {op: flatten}
  - {op: linear, name: fc, out_features: 10}
"""


def test_named_outputs_return_a_dict_and_prune_the_head():
    model = archspec.build(BACKBONE, outputs=["s2", "s3"]).eval()
    assert not any(k.startswith("fc.") for k in model.state_dict())
    out = model(torch.randn(2, 3, 32, 32))
    assert list(out) == ["s2", "s3"]
    assert out["s2"].shape == (2, 16, 16, 16) and out["s3"].shape == (2, 32, 8, 8)
    info = model.feature_info
    assert info.channels() == [16, 32] and info.reduction() == [2, 4]
    assert info.module_name() == ["s2", "s3"] and info[0].node == "s2.2"
    assert info.get_dicts()[1] == {"num_chs": 32, "reduction": 4, "module": "s3"}
    # a node by its full name works too, and the same weights give the same tensors
    full = archspec.build(BACKBONE).eval()
    deep = archspec.build(BACKBONE, outputs=["s3.0"]).eval()
    deep.load_state_dict({k: v for k, v in full.state_dict().items() if k in deep.state_dict()})
    seen = {}
    full.get_submodule("s3.0").register_forward_hook(lambda m, i, o: seen.update(s3=o.clone()))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        full(x)
        torch.testing.assert_close(deep(x)["s3.0"], seen["s3"], rtol=0, atol=0)
    torch.export.export(model, (x,))


def test_features_only_and_out_indices():
    model = archspec.build(BACKBONE, features_only=True)
    assert model.feature_info.module_name() == ["s1", "s2", "s3"]
    out = model(torch.randn(1, 3, 32, 32))
    assert isinstance(out, list) and [t.shape[1] for t in out] == [8, 16, 32]
    picked = archspec.build(BACKBONE, features_only=True, out_indices=(1, -1))
    assert picked.feature_info.module_name() == ["s2", "s3"]
    with pytest.raises(GraphError, match=r"out_indices: 3 is out of range; backbone has 3"):
        archspec.build(BACKBONE, features_only=True, out_indices=[3])
    with pytest.raises(GraphError, match="pass features_only=True too"):
        archspec.build(BACKBONE, out_indices=[0])
    with pytest.raises(GraphError, match="has no image feature maps"):
        archspec.create_model("vit_b_16", features_only=True)


def test_spec_outputs_naming_earlier_layers_prune_the_head():
    spec = BACKBONE + "outputs: [s1, s3]\n"
    graph = archspec.build_graph(spec)
    assert graph.outputs == ("s1.2", "s3.2") and "fc" not in graph
    # a layer that feeds nothing at all is still a mistake
    dangling = spec.replace(
        "  - {op: adaptive_avgpool, name: pool}",
        "  - {op: relu, name: stray, from: s1}\n  - {op: adaptive_avgpool, name: pool, from: s3}",
    )
    with pytest.raises(GraphError, match="node stray: its output is never used") as info:
        archspec.build_graph(dangling)
    assert info.value.line == 14


def test_analysis_summary_and_lint_with_several_outputs(tmp_path):
    from archspec.analysis.lint import lint
    from archspec.analysis.summary import render_summary

    report = archspec.analyze(BACKBONE, outputs=["s2", "s3"])
    assert report.outputs == ["s2.2", "s3.2"]
    assert report.params == sum(
        p.numel() for p in archspec.build(BACKBONE, outputs=["s2", "s3"]).parameters()
    )
    assert "fc" not in report.nodes
    assert lint(BACKBONE, outputs=["s2", "s3"]) == []
    path = tmp_path / "backbone.yaml"
    path.write_text(BACKBONE)
    text = render_summary(str(path), fmt="json", outputs=["s2", "s3"])
    data = json.loads(text)
    assert [o["name"] for o in data["outputs"]] == ["s2", "s3"]
    assert data["outputs"][1] == {
        "name": "s3",
        "node": "s3.2",
        "shape": [32, 8, 8],
        "channels": 32,
        "reduction": 4,
    }
    markdown = render_summary(str(path), fmt="markdown", outputs=["s2", "s3"])
    assert markdown.splitlines()[-1].startswith("| **total** |  | **(16,16,16) (32,8,8)** |")


def test_the_readme_backbone_example_as_written(capsys):
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    [block] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "features_only" in b]
    namespace: dict = {}
    exec(block, namespace)  # the README's code, as written
    assert capsys.readouterr().out.splitlines() == [
        "[64, 128, 256, 512]",
        "[4, 8, 16, 32]",
        "['layer1', 'layer2', 'layer3', 'layer4']",
    ]
    assert {k: tuple(v.shape) for k, v in namespace["features"].items()} == {
        "layer3": (1, 256, 14, 14),
        "layer4": (1, 512, 7, 7),
    }
    assert [tuple(t.shape[1:]) for t in namespace["maps"]][-1] == (512, 7, 7)
