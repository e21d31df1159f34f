"""Every classic spec mistake gives one located, readable error (file:line:col + message)."""

import textwrap

import pytest

import archspec
from archspec.errors import GraphError, SpecError, SpecSyntaxError, SpecValidationError

HEAD = """\
name: t
input: {channels: 3, size: 32}
"""


def spec_error(tmp_path, body: str, head: str = HEAD) -> SpecError:
    path = tmp_path / "bad.yaml"
    path.write_text(head + textwrap.dedent(body))
    with pytest.raises(SpecError) as info:
        archspec.build_graph(path)
    return info.value


# (id, body after HEAD, error class, expected line, substrings of the message)
CASES = [
    (
        "bad-indentation",
        """\
layers:
  - op: conv2d
     kernel_size: 3
""",
        SpecSyntaxError,
        5,
        ["YAML syntax"],
    ),
    (
        "unknown-top-level-key",
        """\
layer:
  - {op: relu}
""",
        SpecValidationError,
        3,
        ["unknown key 'layer'", "did you mean layers"],
    ),
    (
        "unknown-op",
        """\
layers:
  - {op: conv, out_channels: 8, kernel_size: 3}
""",
        SpecValidationError,
        4,
        ["unknown op 'conv'", "conv2d"],
    ),
    (
        "wrong-type",
        """\
layers:
  - {op: conv2d, out_channels: 8, kernel_size: three}
""",
        SpecValidationError,
        4,
        ["conv2d.kernel_size", "kernel_size takes an int or [h, w]", "'three'"],
    ),
    (
        "negative-channels",
        """\
layers:
  - {op: conv2d, out_channels: -8, kernel_size: 3}
""",
        SpecValidationError,
        4,
        ["out_channels", "greater than or equal to 1", "-8"],
    ),
    (
        "unknown-op-parameter",
        """\
layers:
  - {op: conv2d, out_channels: 8, kernal_size: 3}
""",
        SpecValidationError,
        4,
        ["no parameter 'kernal_size'", "did you mean kernel_size"],
    ),
    (
        "dangling-reference",
        """\
layers:
  - {op: conv2d, name: a, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: add, from: [a, shortcut]}
""",
        GraphError,
        5,
        ["no layer named 'shortcut'"],
    ),
    (
        "cycle",
        """\
layers:
  - {op: conv2d, name: a, from: b, out_channels: 3, kernel_size: 3, padding: 1}
  - {op: conv2d, name: b, from: a, out_channels: 3, kernel_size: 3, padding: 1}
""",
        GraphError,
        4,
        ["cycle", "a -> b -> a"],
    ),
    (
        "shape-mismatch-in-add",
        """\
layers:
  - {op: conv2d, name: a, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: conv2d, name: b, out_channels: 16, kernel_size: 3, stride: 2, padding: 1}
  - {op: add, name: sum, from: [a, b]}
""",
        GraphError,
        6,
        ["node sum", "cannot add (8,32,32) and (16,16,16) (from a, b)"],
    ),
    (
        # inside an op's own parameters in_channels is that op's input: the error at the add
        # names the op that read it
        "in-channels-inside-an-op-is-its-own-input",
        """blocks:
  res:
    layers:
      - {op: conv2d, out_channels: 16, kernel_size: 1}
      - {op: conv2d, name: widen, out_channels: "${2 * in_channels}", kernel_size: 1}
      - {op: add, from: [widen, input]}
layers:
  - {op: conv2d, out_channels: 8, kernel_size: 1}
  - {block: res}
""",
        GraphError,
        8,
        [
            "cannot add (32,32,32) and (8,32,32)",
            "1.widen.out_channels '${2 * in_channels}'",
            "in_channels of 1.widen's own input (16)",
            "that op's input, not the block's",
        ],
    ),
    (
        "concat-different-spatial-sizes",
        """\
layers:
  - {op: conv2d, name: a, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: maxpool, name: b, kernel_size: 2}
  - {op: concat, from: [a, b]}
""",
        GraphError,
        6,
        ["cannot concat (8,32,32), (8,16,16)", "other axes must match"],
    ),
    (
        "linear-on-4d-without-flatten",
        """\
layers:
  - {op: conv2d, out_channels: 8, kernel_size: 3}
  - {op: linear, name: fc, out_features: 10}
""",
        GraphError,
        5,
        [
            "node fc",
            "linear expects",
            "got an image tensor (N,C,H,W)",
            "add flatten or adaptive_avgpool",
        ],
    ),
    (
        "duplicate-key",
        """\
layers:
  - {op: conv2d, out_channels: 8, kernel_size: 3, out_channels: 16}
""",
        SpecSyntaxError,
        4,
        ["duplicate key 'out_channels'"],
    ),
    (
        "missing-required-field",
        """\
layers:
  - {op: conv2d, out_channels: 8}
  - {op: relu}
""",
        GraphError,
        4,
        ["kernel_size", "required"],
    ),
    (
        "unknown-block",
        """\
blocks:
  basic:
    params: {c: channels}
    layers: [{op: conv2d, out_channels: $c, kernel_size: 1}]
layers:
  - {block: basik, args: {c: 8}}
""",
        GraphError,
        8,
        ["unknown block 'basik'", "did you mean basic"],
    ),
    (
        "missing-block-argument",
        """\
blocks:
  basic:
    params: {c: channels}
    layers: [{op: conv2d, out_channels: $c, kernel_size: 1}]
layers:
  - {block: basic}
""",
        GraphError,
        8,
        ["block 'basic' needs argument 'c'"],
    ),
    (
        "unknown-block-argument",
        """\
blocks:
  basic:
    params: {c: channels}
    layers: [{op: conv2d, out_channels: $c, kernel_size: 1}]
layers:
  - {block: basic, args: {c: 8, stride: 2}}
""",
        GraphError,
        8,
        ["no parameter 'stride'"],
    ),
    (
        "duplicate-layer-name",
        """\
layers:
  - {op: conv2d, name: a, out_channels: 8, kernel_size: 3}
  - {op: relu, name: a}
""",
        GraphError,
        5,
        ["name 'a' is used twice"],
    ),
    (
        "kernel-larger-than-input",
        """\
layers:
  - {op: conv2d, out_channels: 8, kernel_size: 3, stride: 2}
  - {op: conv2d, name: big, out_channels: 8, kernel_size: 31}
""",
        GraphError,
        5,
        ["node big", "kernel_size 31", "does not fit the 15x15 input"],
    ),
    (
        "groups-do-not-divide",
        """\
layers:
  - {op: conv2d, name: g, out_channels: 8, kernel_size: 3, groups: 2}
""",
        GraphError,
        4,
        ["groups=2 must divide in_channels=3"],
    ),
    (
        "yaml-1.1-boolean-trap",
        """\
layers:
  - {op: conv2d, out_channels: 8, kernel_size: 3, bias: no}
""",
        SpecValidationError,
        4,
        ["conv2d.bias", "valid boolean", "'no'"],
    ),
    (
        "expression-unknown-name",
        """\
layers:
  - {op: conv2d, out_channels: "${width * 2}", kernel_size: 3}
""",
        GraphError,
        4,
        ["unknown name 'width'"],
    ),
    (
        "dead-branch",
        """\
layers:
  - {op: conv2d, name: side, out_channels: 8, kernel_size: 1}
  - {op: relu, from: input}
""",
        GraphError,
        4,
        ["node side", "never used"],
    ),
    (
        "conv-on-tokens",
        """\
layers:
  - {op: patch_embed, out_channels: 16, patch_size: 4}
  - {op: conv2d, name: c, out_channels: 8, kernel_size: 3}
""",
        GraphError,
        5,
        ["conv2d expects an image tensor", "got a token sequence"],
    ),
    (
        "repeat-not-positive",
        """\
layers:
  - {layers: [{op: relu}], repeat: 0}
""",
        SpecValidationError,
        4,
        ["repeat", "greater than or equal to 1"],
    ),
]


@pytest.mark.parametrize(
    ("body", "kind", "line", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_located_error(tmp_path, body, kind, line, needles):
    error = spec_error(tmp_path, body)
    assert isinstance(error, kind), error
    assert error.file.endswith("bad.yaml")
    assert error.line == line, str(error)
    text = str(error)
    for needle in needles:
        assert needle in text, text
    assert text.startswith(f"{error.file}:{line}:{error.column}: ")


def test_at_least_fifteen_distinct_mistakes():
    assert len({c[0] for c in CASES}) >= 15


def test_several_problems_are_reported_together(tmp_path):
    error = spec_error(
        tmp_path,
        """\
layers:
  - {op: conv2d, out_channels: 8, kernal_size: 3}
  - {op: relu, inplace: true}
""",
    )
    assert [p.location.line for p in error.problems] == [4, 5]
