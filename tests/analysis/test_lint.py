"""Every lint rule on a tiny spec: its code, message and line; the fix silences it; the zoo
lints clean but for the findings explained in ZOO_FINDINGS."""

import pytest
from typer.testing import CliRunner

from archspec.analysis.lint import RULES, lint
from archspec.cli import app
from archspec.zoo import list_specs, spec_path

HEAD = "name: t\ninput: {channels: 3, size: SIZE}\nlayers:\n"
HEAD_LINES = 3
CLASSIFIER = """\
  - {op: adaptive_avgpool}
  - {op: flatten}
  - {op: linear, out_features: 10}
"""


def spec(size, body, head=HEAD):
    return head.replace("SIZE", str(size)) + body


def findings(text, **kwargs):
    return [(f.code, f.location.line, f.message) for f in lint(text, **kwargs)]


def test_every_rule_has_a_code_summary_and_a_test():
    for code, r in RULES.items():
        assert code.startswith("AS1") and len(code) == 5
        assert r.summary and "\n" not in r.summary and r.severity in ("warning", "info")
        assert f"def test_{code.lower()}_" in open(__file__).read()


FORGOTTEN = """\
  - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: conv2d, out_channels: 8, kernel_size: 3}
"""


def test_as101_forgotten_padding():
    assert findings(spec(12, FORGOTTEN + CLASSIFIER)) == [
        (
            "AS101",
            HEAD_LINES + 3,
            "node 2: conv2d 3x3 without padding shrinks 12x12 to 10x10 where the rest of the "
            "network keeps sizes; write padding: 1 to keep the size (or padding: 0 if "
            "shrinking is meant)",
        )
    ]
    explicit = FORGOTTEN.replace("kernel_size: 3}", "kernel_size: 3, padding: 0}")
    assert findings(spec(12, explicit + CLASSIFIER)) == []
    valid_net = FORGOTTEN.replace(", padding: 1}", "}")  # shrinking everywhere: on purpose
    assert findings(spec(12, valid_net + CLASSIFIER)) == []


COLLAPSE = """\
  - {op: conv2d, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {op: batchnorm}
  - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: conv2d, out_channels: 16, kernel_size: 3, stride: 2, padding: 1}
  - {op: batchnorm}
  - {op: conv2d, out_channels: 16, kernel_size: 3, padding: 1}
  - {op: maxpool, name: pool, kernel_size: 4}
  - {op: conv2d, out_channels: 32, kernel_size: 1}
  - {op: batchnorm}
  - {op: relu}
  - {op: conv2d, name: last, out_channels: 32, kernel_size: 1}
  - {op: flatten}
  - {op: linear, out_features: 10}
"""


def test_as102_resolution_collapse():
    assert findings(spec(16, COLLAPSE)) == [
        (
            "AS102",
            HEAD_LINES + 7,
            "node pool: the feature map collapses from 4x4 to 1x1 here and 2 more convolutions "
            "run on that single pixel (e.g. 7); downsample less, or use a larger input",
        )
    ]
    assert findings(spec(32, COLLAPSE)) == []  # 2x2 left at this size


RUN = """\
  - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: conv2d, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {op: maxpool, kernel_size: 2}
  - {op: conv2d, out_channels: 16, kernel_size: 1, stride: 2}
  - {op: batchnorm}
  - {op: conv2d, out_channels: 16, kernel_size: 3, padding: 1}
"""


def test_as103_downsampling_run():
    text = spec(48, RUN.replace("kernel_size: 1, stride: 2}", "kernel_size: 3, stride: 2}"))
    assert findings(text + CLASSIFIER) == [
        (
            "AS103",
            HEAD_LINES + 4,
            "node 3: 3 downsampling layers in a row (from 1) divide the resolution by 8 with no "
            "layer working in between; put stride-1 convolutions between them",
        )
    ]
    assert lint(text + CLASSIFIER)[0].severity == "info"
    between = RUN.replace(
        "  - {op: maxpool, kernel_size: 2}\n",
        "  - {op: maxpool, kernel_size: 2}\n  - {op: conv2d, kernel_size: 3, padding: 1}\n",
    ).replace("kernel_size: 1, stride: 2}", "kernel_size: 3, stride: 2}")
    assert findings(spec(48, between + CLASSIFIER)) == []


PLAIN = """\
  - name: plain
    repeat: 8
    layers:
      - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
      - {op: relu}
"""


def test_as104_deep_stack_without_normalization():
    assert findings(spec(16, PLAIN + CLASSIFIER)) == [
        (
            "AS104",
            HEAD_LINES + 4,
            "node plain.7.0: 8 convolutions in a row (from plain.0.0) without normalization; "
            "deep plain stacks train poorly: add batchnorm after the convolutions",
        )
    ]
    normalized = PLAIN.replace("      - {op: relu}\n", "      - {op: batchnorm}\n")
    assert findings(spec(16, normalized + CLASSIFIER)) == []
    assert findings(spec(16, PLAIN.replace("repeat: 8", "repeat: 7") + CLASSIFIER)) == []


SKIPPING = """\
  - {op: conv2d, name: stem, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: conv2d, out_channels: 16, kernel_size: 1, stride: 2}
  - {op: batchnorm, name: main}
  - {op: conv2d, out_channels: 16, kernel_size: 3, padding: 1}
"""


def test_as105_stride_larger_than_kernel():
    assert findings(spec(12, SKIPPING + CLASSIFIER)) == [
        (
            "AS105",
            HEAD_LINES + 2,
            "node 1: stride 2 with a 1x1 kernel never reads 1 of every 2 rows and columns of "
            "its input; use a kernel at least as large as the stride, or pool before",
        )
    ]
    # ResNet's projection shortcut: a 3x3 branch reads every pixel of the same tensor
    shortcut = """\
  - {op: conv2d, name: stem, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: conv2d, name: main, out_channels: 16, kernel_size: 3, stride: 2, padding: 1}
  - {op: conv2d, name: projection, from: stem, out_channels: 16, kernel_size: 1, stride: 2}
  - {op: add, from: [main, projection]}
  - {op: conv2d, out_channels: 16, kernel_size: 3, padding: 1}
"""
    assert findings(spec(12, shortcut + CLASSIFIER)) == []


SHALLOW = """\
  - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: batchnorm}
  - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
"""


def test_as106_small_receptive_field():
    assert findings(spec(64, SHALLOW + CLASSIFIER)) == [
        (
            "AS106",
            HEAD_LINES + 4,
            "node 3: the features reaching the classifier see at most 5x5 pixels of the 64x64 "
            "input (8% of its height); add layers, downsampling or dilation before the head",
        )
    ]
    assert findings(spec(10, SHALLOW + CLASSIFIER)) == []
    assert findings(spec(64, SHALLOW)) == []  # not a classifier


SE_GATE = """\
  - {op: adaptive_avgpool, name: squeeze}
  - {op: conv2d, out_channels: 8, kernel_size: 1}
  - {op: sigmoid, name: gate}
  - {op: mul, from: [SOURCE, gate]}
"""


def as106(text):
    return [line for code, line, _ in findings(text) if code == "AS106"]


def test_as106_sees_through_a_hand_written_squeeze_excite_and_a_flatten_head():
    deep = (
        "".join(
            f"  - {{op: conv2d, out_channels: 8, kernel_size: 3, stride: {1 + i % 2}, padding: 1}}\n"
            for i in range(6)
        )
        + "  - {op: conv2d, name: c3, out_channels: 8, kernel_size: 3, padding: 1}\n"
    )
    gated = deep + SE_GATE.replace("SOURCE", "c3")
    assert as106(spec(32, gated + CLASSIFIER)) == []  # the gate's pool is not the head
    shallow = SHALLOW + "  - {op: relu, name: features}\n"
    shallow_gated = shallow + SE_GATE.replace("SOURCE", "features") + CLASSIFIER
    assert as106(spec(64, shallow_gated)) == [HEAD_LINES + 9]  # the classifier's pool
    flat = SHALLOW + "  - {op: flatten}\n  - {op: linear, out_features: 10}\n"
    assert as106(spec(64, flat)) == []  # every logit reads every pixel, with its own weight


FLAT = """\
  - {op: conv2d, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {op: batchnorm}
  - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: maxpool, kernel_size: 2}
  - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: flatten}
  - {op: linear, name: fc, out_features: 10}
"""
CLAIMS = "name: t\ninput: {channels: 3, size: SIZE, size_multiple: 8}\nlayers:\n"


def test_as107_weights_fit_one_input_size():
    assert findings(spec(32, FLAT, CLAIMS)) == [
        (
            "AS107",
            HEAD_LINES + 7,
            "node fc: 5,130 parameters at 32x32 but 8,010 at 40x40: its weights fit one input "
            "size only, though size_multiple 8 allows others; pool to a fixed size before "
            "flattening (adaptive_avgpool)",
        )
    ]
    assert findings(spec(32, FLAT)) == []  # no size_multiple: the spec claims one size
    pooled = FLAT.replace(
        "  - {op: flatten}\n", "  - {op: adaptive_avgpool, output_size: 2}\n  - {op: flatten}\n"
    )
    assert findings(spec(32, pooled, CLAIMS)) == []


def test_as107_does_not_build_at_another_allowed_size():
    body = FLAT.replace(
        "  - {op: flatten}\n", "  - {op: avgpool, kernel_size: 8}\n  - {op: flatten}\n"
    )
    text = spec(32, body, CLAIMS.replace("size_multiple: 8", "size_multiple: 16"))
    assert findings(text) == [
        (
            "AS107",
            HEAD_LINES + 6,
            "the spec allows other input sizes (size_multiple 16) but does not build at 16x16: "
            "node 5: kernel_size 8 does not fit the 4x4 input",
        )
    ]


def test_findings_of_block_instances_fold_into_one_line():
    text = spec(
        12,
        """\
  - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - name: stage
    repeat: 3
    layers:
      - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
      - {op: conv2d, out_channels: 8, kernel_size: 1, stride: 1}
      - {op: maxpool, kernel_size: 1, stride: 1}
      - {op: conv2d, out_channels: 8, kernel_size: 2, stride: 3, padding: 1}
      - {op: batchnorm}
      - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
      - {op: batchnorm}
"""
        + CLASSIFIER,
    )
    (finding,) = [f for f in lint(text) if f.code == "AS105"]
    assert finding.nodes == ("stage.0.3", "stage.1.3", "stage.2.3")
    assert finding.message.endswith("(also stage.1.3, stage.2.3)")
    assert finding.location.line == HEAD_LINES + 8


# True findings in shipped specs, and why they stay.
ZOO_FINDINGS = {
    # Simonyan & Zisserman (2015) trained VGG without normalization (deeper configurations
    # initialized from shallower ones); vgg16_bn is the normalized variant.
    ("vgg16", "AS104"),
    # Ma et al. (2018) downsample by 8 before any stride-1 work (conv1, maxpool, the first unit
    # of stage2), as the paper's table 5 does; an info finding
    ("shufflenet_v2_x1_0", "AS103"),
}


@pytest.mark.parametrize("name", list_specs())
def test_zoo_lints_clean(name):
    found = {(name, f.code) for f in lint(spec_path(name))}
    assert found <= ZOO_FINDINGS, [str(f) for f in lint(spec_path(name))]


runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _commands():
    from archspec.cli import analysis, spec  # noqa: F401


def test_cli_exit_codes(tmp_path):
    clean, warned, info = tmp_path / "clean.yaml", tmp_path / "warned.yaml", tmp_path / "info.yaml"
    clean.write_text(spec(10, SHALLOW + CLASSIFIER))
    warned.write_text(spec(12, FORGOTTEN + CLASSIFIER))
    info.write_text(spec(16, PLAIN + CLASSIFIER))
    result = runner.invoke(app, ["lint", str(clean)])
    assert result.exit_code == 0 and "no findings" in result.output
    result = runner.invoke(app, ["lint", str(warned)])
    assert result.exit_code == 1
    assert f"{warned}:{HEAD_LINES + 3}:5: AS101 node 2: conv2d 3x3 without padding" in result.output
    assert runner.invoke(app, ["lint", str(warned), "--ignore", "AS101"]).exit_code == 0
    result = runner.invoke(app, ["lint", str(warned), "--ignore", "AS101,AS999"])
    assert result.exit_code == 1 and "unknown rule code(s) AS999" in result.output
    result = runner.invoke(app, ["lint", str(info)])
    assert result.exit_code == 0 and "AS104 (info)" in result.output
    assert runner.invoke(app, ["lint", str(info), "--strict"]).exit_code == 1
    assert runner.invoke(app, ["lint", str(clean), "--strict"]).exit_code == 0


def test_cli_lists_rules_and_reports_spec_errors(tmp_path):
    result = runner.invoke(app, ["lint", "--rules"])
    assert result.exit_code == 0
    for code in RULES:
        assert code in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec(12, "  - {op: conv2d, kernel_size: 30}\n"))
    result = runner.invoke(app, ["lint", str(bad)])
    assert result.exit_code == 2 and "does not fit" in result.output
    assert "Traceback" not in result.output
