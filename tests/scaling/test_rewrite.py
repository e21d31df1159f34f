"""Compound scaling rewrites specs: channels, repeats, resolution and kernels."""

import pytest

import archspec
from archspec.errors import ScaleError
from archspec.scaling.rewrite import scale
from archspec.scaling.rules import make_divisible
from archspec.spec.dump import dump_spec, spec_data


@pytest.fixture(scope="module")
def resnet18():
    return archspec.load_spec("specs/resnet18.yaml")


def test_make_divisible_rule():
    assert make_divisible(32 * 1.1) == 32  # 35.2 rounds to 32 (>= 90%)
    assert make_divisible(16 * 1.4) == 24  # 22.4 -> 24
    assert make_divisible(10) == 16 or make_divisible(10) == 8
    assert make_divisible(10) >= 0.9 * 10
    for value in range(1, 500):
        for width in (0.25, 0.5, 1.1, 1.4, 2.0):
            out = make_divisible(value * width)
            assert out % 8 == 0 and out >= 0.9 * value * width


def test_width_depth_resolution(resnet18):
    scaled = scale(resnet18, width=0.5, depth=1.5, resolution=0.5)
    graph = archspec.build_graph(scaled)
    assert graph["conv1"].shape.dims == (32, 64, 64)
    assert "layer1.2.conv1" in graph and "layer1.3.conv1" not in graph  # ceil(2 * 1.5) = 3
    assert graph["layer4.0.conv1"].shape.channels == 256
    assert scaled.input.size == 128  # 224 * 0.5 = 112 -> nearest multiple of 32
    assert graph["fc"].shape.dims == (1000,)  # $num_classes is not a channel literal


HEADS = """\
name: heads
input: {channels: 3, size: 16}
layers:
  - {op: conv2d, name: stem, out_channels: 16, kernel_size: 3, padding: 1}
  - {op: conv2d, name: features, out_channels: 32, kernel_size: 3, padding: 1}
  - {op: adaptive_avgpool, name: pool}
  - {op: flatten}
  - {op: linear, name: hidden, out_features: 64}
  - {op: relu}
  - {op: dropout, p: 0.2}
  - {op: linear, name: fc, out_features: 10}
  - {op: relu, name: last}
outputs: [pool, last]
"""


def test_a_literal_class_count_is_the_task_s_and_never_scaled():
    scaled = archspec.build_graph(scale(archspec.load_spec(HEADS), width=1.5))
    assert scaled["fc"].shape.dims == (10,)  # the head: walked back from the output vector
    assert scaled["hidden"].shape.dims == (96,)  # a hidden layer of the head scales
    assert scaled["features"].shape.channels == 48  # so does a pooled feature map's conv
    assert scaled["stem"].shape.channels == 24


def test_identity_scale_is_the_same_model(resnet18):
    again = scale(resnet18)
    assert spec_data(archspec.load_spec(dump_spec(again))) == spec_data(resnet18)


def test_dump_round_trip_builds_the_same_model(resnet18):
    scaled = scale(resnet18, width=0.75, depth=2.0)
    text = dump_spec(scaled)
    reloaded = archspec.load_spec(text)
    a, b = archspec.build(scaled), archspec.build(reloaded)
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())


def test_kernel_choice_per_stage():
    spec = archspec.load_spec("""\
name: k
input: {channels: 3, size: 32}
blocks:
  dw:
    params: {kernel_size: {type: kernel, default: 3}}
    layers:
      - {op: conv2d, name: conv, kernel_size: $kernel_size, padding: same, groups: depthwise}
layers:
  - {block: dw, name: stage1, repeat: 2}
  - {block: dw, name: stage2}
""")
    scaled = scale(spec, kernels={"stage2": 5})
    graph = archspec.build_graph(scaled)
    assert graph["stage1.0.conv"].op.kernel_size == 3
    assert graph["stage2.conv"].op.kernel_size == 5
    with pytest.raises(ScaleError, match="unknown stage 'stage3'"):
        scale(spec, kernels={"stage3": 5})


@pytest.mark.parametrize("bad", [{"width": 0}, {"depth": -1.0}, {"resolution": 100.0}])
def test_bad_multipliers(resnet18, bad):
    with pytest.raises(ScaleError):
        scale(resnet18, **bad)


def test_unknown_preset(resnet18):
    with pytest.raises(ScaleError, match="unknown scale preset 'b3'"):
        archspec.create_model("resnet18", scale="b3")


def test_a_preset_asked_of_a_spec_without_presets_says_so():
    with pytest.raises(ScaleError) as caught:
        archspec.create_model("resnet18", scale="b9")
    assert str(caught.value) == (
        "unknown scale preset 'b9': resnet18 has no scale presets (its `scaling: presets:`); "
        "scale it with --width, --depth and --resolution"
    )
    with pytest.raises(
        ScaleError,
        match=r"unknown scale preset 'b9'; did you mean b7, b6, b5\? \(in efficientnet_b0\)",
    ):
        archspec.create_model("efficientnet_b0", scale="b9")


def test_kernel_choice_reaches_nested_stages():
    b0 = archspec.load_spec("specs/efficientnet_b0.yaml")
    graph = archspec.build_graph(scale(b0, kernels={"features.3": 3, "features.6": 7}))
    assert graph["features.3.1.block.1.0"].op.kernel_size == 3
    assert graph["features.6.3.block.1.0"].op.kernel_size == 7
    assert graph["features.4.0.block.1.0"].op.kernel_size == 3  # untouched
    with pytest.raises(ScaleError, match=r"unknown stage 'features.33'; did you mean features.3"):
        scale(b0, kernels={"features.33": 3})


def test_scale_refuses_to_write_an_invalid_spec(tmp_path):
    from typer.testing import CliRunner

    from archspec.cli import app, search  # noqa: F401 - search registers `scale`

    path = tmp_path / "rx.yaml"
    path.write_text(
        "name: rx\ninput: {channels: 3, size: 32}\nlayers:\n"
        "  - {op: conv2d, out_channels: 64, kernel_size: 3, padding: 1}\n"
        "  - {op: conv2d, out_channels: 128, kernel_size: 3, padding: 1, groups: 32}\n"
        "  - {op: adaptive_avgpool}\n"
    )
    with pytest.raises(ScaleError) as info:
        archspec.scale(archspec.load_spec(path), width=0.3)
    assert str(info.value) == (
        f"{path}:5:5: scaling by width 0.3 gives an invalid spec: node 1: groups=32 must divide "
        "in_channels=24 and out_channels=40"
    )
    result = CliRunner().invoke(
        app, ["scale", str(path), "--width", "0.3", "-o", str(tmp_path / "s.yaml")]
    )
    assert result.exit_code == 1
    assert not (tmp_path / "s.yaml").exists()
    # a divisor that the group count divides keeps it valid
    text = path.read_text().replace("layers:", "scaling: {divisor: 32}\nlayers:")
    scaled = archspec.scale(archspec.load_spec(text), width=0.3)
    assert archspec.analyze(scaled).params > 0
