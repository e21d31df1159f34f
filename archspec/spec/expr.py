"""Safe arithmetic in spec values: `$name` and `${expr}`; never Python's eval.

`$out_channels` reads a parameter; `${in_channels * expand_ratio}` computes one. Only numbers,
names in scope, arithmetic, comparisons, `a if c else b` and a few functions are allowed. Work
and results are bounded: every operand and result is a bool, an int or a finite float of at most
MAX_MAGNITUDE, or a string of at most MAX_STRING_CHARS; a power is refused before it is computed
when its result would be larger. Any failure is an ExprError, which the caller locates.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from archspec.scaling.rules import make_divisible

_REF = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_EXPR = re.compile(r"^\$\{(.+)\}$", re.S)
MAX_EXPR_CHARS = 200
MAX_MAGNITUDE = 10**18  # |int| and |float| results; far beyond any channel count or rate
MAX_STRING_CHARS = 256


class ExprError(ValueError):
    """An expression that cannot be evaluated; the caller adds the location."""


def _describe(value: Any) -> str:
    """A short, always-formattable description of a value for error messages."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        if abs(value) > MAX_MAGNITUDE:  # str() of a huge int is slow, or refused by Python
            return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"a string of {len(value)} characters"
    return f"a {type(value).__name__}"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def checked(value: Any) -> Any:
    """`value` if it is within the bounds of expression values; ExprError otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
            return value
        raise ExprError(f"result too large: {_describe(value)} (the limit is ±10**18)")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExprError(f"result is not a finite number: {value!r}")
        if abs(value) > MAX_MAGNITUDE:
            raise ExprError(f"result too large: {value!r} (the limit is ±1e18)")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise ExprError(
                f"result too long: a string of {len(value)} characters "
                f"(the limit is {MAX_STRING_CHARS})"
            )
        return value
    raise ExprError(f"unsupported value: {_describe(value)}")


def _number(value: Any, what: str) -> int | float:
    if not isinstance(value, (int, float)):
        raise ExprError(f"{what} needs a number; got {_describe(value)}")
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int):
        raise ExprError(f"{what} needs an integer; got {_describe(value)}")
    return int(value)


def _power(base: Any, exponent: Any) -> Any:
    base, exponent = _number(base, "**"), _number(exponent, "**")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        # refuse before computing: 9**64**64 would take forever
        digits = exponent * math.log10(abs(base))
        if digits > math.log10(MAX_MAGNITUDE):
            raise ExprError(
                f"result too large: {base} ** {exponent} has about {digits:,.0f} digits "
                "(the limit is ±10**18)"
            )
    if base == 0 and exponent < 0:
        raise ExprError("0 cannot be raised to a negative power")
    if base < 0 and isinstance(exponent, float) and not exponent.is_integer():
        raise ExprError(f"{base} ** {exponent} is not a real number")
    try:
        return float(base) ** exponent if isinstance(exponent, float) else base**exponent
    except OverflowError as exc:
        raise ExprError(f"result too large: {base} ** {exponent}") from exc


def _arith(op: Callable[[Any, Any], Any], symbol: str) -> Callable[[Any, Any], Any]:
    def apply(left: Any, right: Any) -> Any:
        if symbol == "+" and isinstance(left, str) and isinstance(right, str):
            return left + right
        _number(left, symbol), _number(right, symbol)
        try:
            return op(left, right)
        except ZeroDivisionError as exc:
            raise ExprError(f"division by zero ({_describe(left)} {symbol} 0)") from exc
        except OverflowError as exc:
            raise ExprError(
                f"result too large: {_describe(left)} {symbol} {_describe(right)}"
            ) from exc

    return apply


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: _arith(operator.add, "+"),
    ast.Sub: _arith(operator.sub, "-"),
    ast.Mult: _arith(operator.mul, "*"),
    ast.Div: _arith(operator.truediv, "/"),
    ast.FloorDiv: _arith(operator.floordiv, "//"),
    ast.Mod: _arith(operator.mod, "%"),
    ast.Pow: _power,
}
_CMPOPS: dict[type, tuple[Callable[[Any, Any], bool], str]] = {
    ast.Eq: (operator.eq, "=="),
    ast.NotEq: (operator.ne, "!="),
    ast.Lt: (operator.lt, "<"),
    ast.LtE: (operator.le, "<="),
    ast.Gt: (operator.gt, ">"),
    ast.GtE: (operator.ge, ">="),
}


def _compare(op: type, left: Any, right: Any) -> bool:
    function, symbol = _CMPOPS[op]
    if symbol not in ("==", "!=") and _kind(left) != _kind(right):
        if not {_kind(left), _kind(right)} <= {"bool", "number"}:
            raise ExprError(
                f"cannot compare {_describe(left)} {symbol} {_describe(right)} "
                f"({_kind(left)} and {_kind(right)})"
            )
    return bool(function(left, right))


def _round(value: Any, ndigits: Any = None) -> int | float:
    value = _number(value, "round()")
    if ndigits is None:
        return round(value)
    ndigits = _int(ndigits, "round()")
    if abs(ndigits) > 18:
        raise ExprError(f"round(): ndigits must be between -18 and 18; got {ndigits}")
    return round(value, ndigits)


def _make_divisible(value: Any, divisor: Any = 8, min_value: Any = None) -> int:
    value = _number(value, "make_divisible()")
    divisor = _int(divisor, "make_divisible()")
    if divisor < 1:
        raise ExprError(f"make_divisible(): divisor must be a positive integer; got {divisor}")
    if min_value is not None:
        min_value = _int(min_value, "make_divisible()")
    return make_divisible(value, divisor, min_value)


def _to_int(value: Any) -> int:
    if isinstance(value, str):
        if not re.fullmatch(r"\s*[+-]?\d{1,18}\s*", value):
            raise ExprError(f"int(): {_describe(value)} is not an integer of at most 18 digits")
        return int(value)
    return int(_number(value, "int()"))


def _to_float(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value) if len(value) <= 40 else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ExprError("float(): the string is not a finite number")
        return value
    return float(_number(value, "float()"))


def _extreme(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    def apply(*args: Any) -> Any:
        if not args:
            raise ExprError(f"{name}() needs at least one argument")
        kinds = {_kind(a) for a in args} - {"bool"} or {"bool"}
        if len(kinds) != 1:
            raise ExprError(f"{name}() cannot mix {' and '.join(sorted(kinds))} arguments")
        return function(args)

    return apply


def _unary(function: Callable[[Any], Any], name: str) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        return function(_number(value, f"{name}()"))

    return apply


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": _extreme(min, "min"),
    "max": _extreme(max, "max"),
    "abs": _unary(abs, "abs"),
    "int": _to_int,
    "float": _to_float,
    "round": _round,
    "ceil": _unary(math.ceil, "ceil"),
    "floor": _unary(math.floor, "floor"),
    "make_divisible": _make_divisible,
}
_ARITY = {"abs": (1, 1), "int": (1, 1), "float": (1, 1), "ceil": (1, 1), "floor": (1, 1)}
_ARITY |= {"round": (1, 2), "make_divisible": (1, 3), "min": (1, 64), "max": (1, 64)}


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$")


def has_expression(value: Any) -> bool:
    """An expression, or a list holding one (`kernel_size: [1, $k]`), evaluated element-wise."""
    if isinstance(value, list):
        return any(has_expression(v) for v in value)
    return is_expression(value)


def evaluate(value: Any, scope: Mapping[str, Any]) -> Any:
    """Value of `value` in `scope`; non-expressions come back unchanged (lists element-wise)."""
    if isinstance(value, list):
        return [evaluate(v, scope) for v in value]
    if not is_expression(value):
        return value
    ref = _REF.match(value)
    if ref and isinstance(scope.get(ref.group(1)), list):
        # `$kernel_size` passes a list parameter on whole; lists take part in no arithmetic
        return [checked(v) for v in scope[ref.group(1)]]
    try:
        return _eval(_parse(value), scope)
    except RecursionError as exc:
        raise ExprError("expression nested too deeply") from exc


@functools.lru_cache(maxsize=4096)  # each block instance evaluates the same texts again
def _parse(text: str) -> ast.AST:
    if len(text) > MAX_EXPR_CHARS + 3:
        raise ExprError(f"expression longer than {MAX_EXPR_CHARS} characters")
    ref = _REF.match(text)
    if ref:
        return ast.Name(id=ref.group(1), ctx=ast.Load())
    match = _EXPR.match(text)
    if not match:
        raise ExprError(f"{_describe(text)} is not an expression; write $name or ${{expression}}")
    try:
        return ast.parse(match.group(1).strip(), mode="eval").body
    except SyntaxError as exc:
        raise ExprError(f"invalid expression {_describe(text)}: {exc.msg}") from exc
    except (ValueError, MemoryError, RecursionError) as exc:  # null bytes, parser overflow
        raise ExprError(f"invalid expression {_describe(text)}") from exc


def _eval(node: ast.AST, scope: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool, str)):
        return checked(node.value)
    if isinstance(node, ast.Name):
        if node.id not in scope:
            known = ", ".join(sorted(scope)) or "none"
            raise ExprError(f"unknown name {node.id!r} (in scope: {known})")
        return checked(scope[node.id])
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left, scope), _eval(node.right, scope)
        return checked(_BINOPS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        operand = _eval(node.operand, scope)
        if isinstance(node.op, ast.Not):
            return not operand
        operand = _number(operand, "-" if isinstance(node.op, ast.USub) else "+")
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BoolOp):
        values = [_eval(v, scope) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare) and all(type(op) in _CMPOPS for op in node.ops):
        left = _eval(node.left, scope)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, scope)
            if not _compare(type(op), left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, scope) else node.orelse, scope)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in FUNCTIONS
        and not node.keywords
        and not any(isinstance(a, ast.Starred) for a in node.args)
    ):
        name = node.func.id
        low, high = _ARITY[name]
        if not low <= len(node.args) <= high:
            count = f"{low}" if low == high else f"{low} to {high}"
            raise ExprError(f"{name}() takes {count} arguments; got {len(node.args)}")
        args = [_eval(a, scope) for a in node.args]
        try:
            return checked(FUNCTIONS[name](*args))
        except (ArithmeticError, TypeError, ValueError) as exc:
            if isinstance(exc, ExprError):
                raise
            raise ExprError(f"{name}(): {type(exc).__name__}") from exc
    raise ExprError(f"unsupported expression element: {type(node).__name__}")
