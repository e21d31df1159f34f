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
        ("${2 ** 1000}", "exponent too large"),
        ("${c / 0}", "division by zero"),
        ("${width}", "unknown name 'width'"),
        ("${c +}", "invalid expression"),
        ("$", "not an expression"),
    ],
)
def test_rejected(text, message):
    with pytest.raises(ExprError, match=message):
        evaluate(text, {"c": 24})
