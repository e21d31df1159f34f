"""`from: group.layer`: a layer inside a group read from outside it (HRNet's branches, each read
by the fuse layers), through every stage that reads references: build, shapes, the generated
forward, summary, lint, features, scaling and the located errors."""

import pytest
import torch
from torch import nn

import archspec
from archspec.analysis.lint import lint
from archspec.errors import ArchspecError, GraphError
from archspec.graph.features import feature_info

SPEC = """\
name: two_branches
input: {channels: 3, size: 8}
layers:
  - name: branches
    layers:
      - layers:
          - {op: conv2d, name: conv, out_channels: 4, kernel_size: 3, padding: 1}
          - {op: relu}
      - from: input
        layers:
          - {op: conv2d, out_channels: 4, kernel_size: 3, stride: 2, padding: 1}
  - name: stage
    repeat: 2
    layers:
      - {op: conv2d, name: conv, kernel_size: 1}
      - {op: relu}
  - {op: add, name: low, from: [stage, stage.0.conv]}
  - {op: upsample, name: up, scale_factor: 2}
  - {op: add, name: fused, from: [branches.0, up, branches.0.conv]}
  - {op: chunk, name: halves, chunks: 2}
  - {op: concat, from: [halves.1, halves.0]}
"""


class TwoBranches(nn.Module):
    """SPEC by hand, with the same module names."""

    def __init__(self) -> None:
        super().__init__()
        high = nn.Module()
        high.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.branches = nn.ModuleList([high, nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1))])
        self.stage = nn.ModuleList([nn.Module(), nn.Module()])
        for instance in self.stage:
            instance.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.branches[0].conv(x)
        high = torch.relu(conv)
        first = self.stage[0].conv(self.branches[1](x))
        low = torch.relu(self.stage[1].conv(torch.relu(first))) + first
        fused = high + nn.functional.interpolate(low, scale_factor=2.0, mode="nearest") + conv
        return torch.cat([fused[:, 2:], fused[:, :2]], dim=1)


def test_a_group_read_at_an_inner_layer_builds_with_its_shapes():
    graph = archspec.build_graph(SPEC)
    assert graph["fused"].inputs == ("branches.0.1", "up", "branches.0.conv")
    assert graph["low"].inputs == ("stage.1.1", "stage.0.conv")
    assert graph.shape("branches.0.conv").dims == (4, 8, 8)
    assert graph.shape("low").dims == (4, 4, 4)
    assert graph.shape("up").dims == (4, 8, 8)
    assert graph["halves.1"].inputs == ("halves",)  # a split's parts keep their meaning


def test_its_outputs_equal_the_hand_written_module():
    torch.manual_seed(0)
    reference = TwoBranches().eval()
    built = archspec.build(SPEC).eval()
    assert set(built.state_dict()) == set(reference.state_dict())
    built.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(built(x), reference(x), rtol=0, atol=0)
    exported = torch.export.export(built, (x,))  # the generated forward is plain fx code
    torch.testing.assert_close(exported.module()(x), reference(x), rtol=0, atol=0)


def test_summary_lint_features_and_scaling_follow_the_references():
    report = archspec.analyze(SPEC)
    assert report.params == sum(p.numel() for p in TwoBranches().parameters())
    assert not [f for f in lint(SPEC) if "never used" in f.message]
    features = archspec.build_graph(SPEC, outputs=["branches.0", "branches", "low"])
    assert [features.shape(n).dims for n in features.outputs] == [(4, 8, 8), (4, 4, 4), (4, 4, 4)]
    assert feature_info(features).reduction() == [1, 2, 2]
    wider = archspec.scale(archspec.load_spec(SPEC), width=2.0)
    assert archspec.build_graph(wider).shape("fused").dims == (8, 8, 8)


def test_a_scaled_depth_that_removes_the_instance_read_is_a_located_error():
    with pytest.raises(ArchspecError) as caught:
        archspec.scale(archspec.load_spec(SPEC.replace("stage.0.conv", "stage.1.conv")), depth=0.5)
    assert (
        str(caught.value)
        .splitlines()[0]
        .startswith(
            "<spec>:17:32: scaling by depth 0.5 gives an invalid spec: from: 'stage.1.conv': 'stage' "
            "repeats 1 time; `.i` reads instance i (0 to 0), `.i.layer` a layer inside it"
        )
    )


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("branches.nope", "from: 'branches.nope': 'branches' has no layer 'nope'; known: 0, 1"),
        ("branches.0.conf", "'branches.0' has no layer 'conf'; did you mean conv?"),
        ("stage.2", "'stage' repeats 2 times; `.i` reads instance i (0 to 1)"),
        ("stage.conv", "'stage' repeats 2 times; `.i` reads instance i (0 to 1)"),
        ("up.1", "'up' is a upsample with one output; `.1` reads a part of a split or chunk"),
        ("brunches.0", "from: 'brunches.0': no layer named 'brunches' here; did you mean"),
    ],
)
def test_a_bad_inner_reference_is_one_located_line(reference, message):
    text = SPEC.replace("[branches.0, up, branches.0.conv]", f"[branches.0, up, {reference}]")
    with pytest.raises(GraphError) as caught:
        archspec.build_graph(text)
    [problem] = caught.value.problems
    assert problem.location.line == 19
    assert message in problem.message


def test_a_block_stage_is_read_inside_by_instance_and_a_switched_off_layer_by_its_input():
    graph = archspec.build_graph(
        "name: blocks\n"
        "input: {channels: 3, size: 8}\n"
        "blocks:\n"
        "  unit:\n"
        "    layers:\n"
        "      - {op: conv2d, name: conv, out_channels: 4, kernel_size: 1}\n"
        "      - {op: relu, name: act, when: false}\n"
        "      - {op: relu}\n"
        "layers:\n"
        "  - {block: unit, name: stage, repeat: 3}\n"
        "  - {op: add, name: sum, from: [stage, stage.1.conv, stage.0.act, stage.2]}\n"
    )
    assert graph["sum"].inputs == ("stage.2.1", "stage.1.conv", "stage.0.conv", "stage.2.1")
