"""Spec expressions are arithmetic only: no attribute access, no calls outside the allow-list."""

import pytest

from archspec.spec.expr import ExprError, evaluate


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("$c", 24),
        ("${c * 6}", 144),
        ("${make_divisible(c * 6 // 4, 8)}", 40),
        ("${max(1, c // 4)}", 6),
        ("${0.2 * i / (n - 1)}", 0.1),
        ("${'a' if c > 8 else 'b'}", "a"),
        ("${c == 24 and not i}", False),
        (7, 7),
        ("plain", "plain"),
    ],
)
def test_evaluate(text, value):
    assert (
        evaluate(text, {"c": 24, "i": 1, "n": 3}) == pytest.approx(value)
        if isinstance(value, float)
        else evaluate(text, {"c": 24, "i": 1, "n": 3}) == value
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${__import__('os').system('true')}", "unsupported"),
        ("${c.__class__}", "unsupported"),
        ("${[x for x in range(9)]}", "unsupported"),
        ("${open('/etc/passwd')}", "unsupported"),
        ("${2 ** 1000}", r"result too large: 2 \*\* 1000 has about 301 digits"),
        ("${c / 0}", "division by zero"),
        ("${width}", "unknown name 'width'"),
        ("${c +}", "invalid expression"),
        ("$", "not an expression"),
    ],
)
def test_rejected(text, message):
    with pytest.raises(ExprError, match=message):
        evaluate(text, {"c": 24})


# The classes a fuzzer found: each used to leak a Python exception or run unbounded.
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${'a' < 1}", "cannot compare 'a' < 1 (string and number)"),
        ("${-'a'}", "- needs a number; got 'a'"),
        ("${make_divisible(8, 0)}", "make_divisible(): divisor must be a positive integer; got 0"),
        ("${(10.0**64)**64}", "result too large: 1e+64"),
        ("${((((9**64)**64)**64)**64)**64}", "result too large: 9 ** 64 has about 61 digits"),
        ("${10**18 * 10**18}", "result too large: an integer of about 37 digits"),
        ("${'%0999999999d' % 1}", "% needs a number"),
        ("${'ab' + 'ab' + 'ab'}", None),
        ("${round(5, -10**17)}", "round(): ndigits must be between -18 and 18"),
        ("${float('inf')}", "float(): the string is not a finite number"),
        ("${(-8) ** 0.5}", "-8 ** 0.5 is not a real number"),
        ("${0 ** -1}", "0 cannot be raised to a negative power"),
        ("${max()}", "max() takes 1 to 64 arguments; got 0"),
        ("${max('a', 1)}", "max() cannot mix number and string arguments"),
        ("${ceil(1e30)}", "result too large: 1e+30"),
    ],
)
def test_bounded(text, message):
    if message is None:
        assert evaluate(text, {}) == "ababab"
        return
    with pytest.raises(ExprError) as info:
        evaluate(text, {"c": 24})
    assert message in str(info.value)


def test_huge_parameter_value_is_refused_without_formatting_it():
    with pytest.raises(ExprError, match="an integer of about 5,001 digits"):
        evaluate("${c + 1}", {"c": 10**5000})


def test_expression_error_in_a_spec_is_located(tmp_path):
    import archspec
    from archspec.errors import GraphError

    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: t\n"
        "input: {channels: 3, size: 8}\n"
        "layers:\n"
        "  - op: conv2d\n"
        "    out_channels: \"${-'a'}\"\n"
        "    kernel_size: 3\n"
        "  - {op: relu, when: \"${'a' < 1}\"}\n"
    )
    with pytest.raises(GraphError) as info:
        archspec.build_graph(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:7:22: layers.1.when: cannot compare 'a' < 1 (string and number)"
    ]
    path.write_text(path.read_text().replace("  - {op: relu, when: \"${'a' < 1}\"}\n", ""))
    with pytest.raises(GraphError) as info:
        archspec.build_graph(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:5:19: node 0: layers.0.out_channels: - needs a number; got 'a'"
    ]
