"""Safe arithmetic in spec values: `$name` and `${expr}`; never Python's eval.

`$out_channels` reads a parameter; `${in_channels * expand_ratio}` computes one. Only numbers,
names in scope, arithmetic, comparisons, `a if c else b` and a few functions are allowed.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from archspec.scaling import make_divisible

_REF = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_EXPR = re.compile(r"^\$\{(.+)\}$", re.S)
MAX_EXPR_CHARS = 200

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "int": int,
    "float": float,
    "round": round,
    "ceil": math.ceil,
    "floor": math.floor,
    "make_divisible": make_divisible,
}

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


class ExprError(ValueError):
    """An expression that cannot be evaluated; the caller adds the location."""


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$")


def evaluate(value: Any, scope: Mapping[str, Any]) -> Any:
    """Value of `value` in `scope`; non-expressions come back unchanged (lists element-wise)."""
    if isinstance(value, list):
        return [evaluate(v, scope) for v in value]
    if not is_expression(value):
        return value
    return _eval(_parse(value), scope)


@functools.lru_cache(maxsize=4096)  # each block instance evaluates the same texts again
def _parse(text: str) -> ast.AST:
    ref = _REF.match(text)
    if ref:
        return ast.Name(id=ref.group(1), ctx=ast.Load())
    match = _EXPR.match(text)
    if not match:
        raise ExprError(f"{text!r} is not an expression; write $name or ${{expression}}")
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"expression longer than {MAX_EXPR_CHARS} characters")
    try:
        return ast.parse(match.group(1).strip(), mode="eval").body
    except SyntaxError as exc:
        raise ExprError(f"invalid expression {text!r}: {exc.msg}") from exc


def _eval(node: ast.AST, scope: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool, str)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in scope:
            known = ", ".join(sorted(scope)) or "none"
            raise ExprError(f"unknown name {node.id!r} (in scope: {known})")
        return scope[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left, scope), _eval(node.right, scope)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ExprError("exponent too large")
        try:
            return _BINOPS[type(node.op)](left, right)
        except (ZeroDivisionError, TypeError) as exc:
            raise ExprError(str(exc)) from exc
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        operand = _eval(node.operand, scope)
        if isinstance(node.op, ast.Not):
            return not operand
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BoolOp):
        values = [_eval(v, scope) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare) and all(type(op) in _CMPOPS for op in node.ops):
        left = _eval(node.left, scope)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, scope)
            if not _CMPOPS[type(op)](left, right):
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
    ):
        args = [_eval(a, scope) for a in node.args]
        try:
            return FUNCTIONS[node.func.id](*args)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ExprError(f"{node.func.id}(): {exc}") from exc
    raise ExprError(f"unsupported expression element: {ast.dump(node)[:60]}")
