"""Ops that join branches: add (residuals), sub (EfficientFormer's pool(x) - x), mul (gating)
and concat (Inception, DenseNet)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from archspec.ops.base import Op, ShapeError, example, register
from archspec.shape import Shape

if TYPE_CHECKING:
    from torch import fx


def _broadcast(a: Shape, b: Shape) -> Shape | None:
    """The shape of an elementwise merge of a and b: same layout, or a generic tensor with any
    other of the same rank (the result is generic: MaxViT's partitions, imported, are a
    generic (groups, tokens, C) residual plus a channels-last-labelled attention output)."""
    generic = "ND" in (a.layout, b.layout)
    if (a.layout != b.layout and not generic) or len(a.dims) != len(b.dims):
        return None
    dims = []
    for x, y in zip(a.dims, b.dims, strict=True):
        if x != y and 1 not in (x, y):
            return None
        dims.append(max(x, y))
    return Shape("ND" if generic else a.layout, tuple(dims))


class _Elementwise(Op):
    """Inputs of one layout and rank; a size-1 axis broadcasts (a (1,C) parameter over the
    tokens, a (C,1,1) gate over the pixels)."""

    arity = None
    function: ClassVar[Callable[..., Any]]
    verb: ClassVar[str]

    def infer(self, inputs: list[Shape]) -> Shape:
        out = inputs[0]
        for other in inputs[1:]:
            merged = _broadcast(out, other)
            if merged is None:
                shapes = " and ".join(f"{s}" for s in inputs)
                why = (
                    ""
                    if out.layout == other.layout
                    else f" ({out.describe()} vs {other.describe()})"
                )
                raise ShapeError(f"cannot {self.verb} {shapes}{why}")
            out = merged
        return out

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        node = args[0]
        for arg in args[1:]:
            node = graph.call_function(type(self).function, (node, arg))
        return node


@register
class Add(_Elementwise):
    """Elementwise sum (residual connections); a size-1 axis broadcasts (a position bias
    added to the attention logits of every window, ResMLP's affine norm adding a (1,C)
    parameter to every token)."""

    op = "add"
    examples = (
        example({}, (3, 5, 5), (3, 5, 5)),
        example({}, Shape("LC", (4, 6)), Shape("LC", (4, 6)), Shape("LC", (4, 6))),
        example({}, Shape("ND", (3, 2, 4, 4)), Shape("ND", (1, 2, 4, 4))),
        example({}, Shape("LC", (4, 6)), Shape("LC", (1, 6))),
        example({}, Shape("ND", (3, 4, 6)), Shape("HWC", (3, 4, 6))),
    )
    verb = "add"
    function = staticmethod(operator.add)
    in_place = True
    overwritable = True

    def emit_in_place(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        if inputs[0] != self.infer(inputs):  # a broadcast first input cannot hold the sum
            return self.emit(graph, args, target, inputs)
        node = graph.call_function(operator.add, (args[0], args[1]))
        node.target = operator.iadd  # named `add` like the out-of-place call
        for arg in args[2:]:
            node = graph.call_function(operator.add, (node, arg))
        return node


@register
class Sub(_Elementwise):
    """The first input minus the second (EfficientFormer's pooling mixer, pool(x) - x); a
    size-1 axis broadcasts."""

    op = "sub"
    arity = 2
    examples = (
        example({}, (3, 5, 5), (3, 5, 5)),
        example({}, Shape("LC", (4, 6)), Shape("LC", (1, 6))),
    )
    verb = "subtract"
    function = staticmethod(operator.sub)


@register
class Mul(_Elementwise):
    """Elementwise product; a size-1 axis broadcasts (attention and gating)."""

    op = "mul"
    examples = (example({}, (3, 5, 5), (3, 5, 5)), example({}, (3, 5, 5), (3, 1, 1)))
    verb = "multiply"
    function = staticmethod(operator.mul)


@register
class Concat(Op):
    """Concatenation along the channel axis (or the token axis for sequences)."""

    op = "concat"
    examples = (
        example({}, (3, 5, 5), (2, 5, 5)),
        example({}, Shape("HWC", (5, 5, 3)), Shape("HWC", (5, 5, 1))),
        example({"axis": "tokens"}, Shape("LC", (4, 6)), Shape("LC", (1, 6))),
    )
    arity = None
    overwritable = True

    axis: Literal["channels", "tokens"] = "channels"

    def dim(self, shape: Shape) -> int:
        if self.axis == "tokens":
            return 1
        return 1 if shape.layout == "CHW" else len(shape.dims)

    def infer(self, inputs: list[Shape]) -> Shape:
        first = inputs[0]
        if self.axis == "tokens" and first.layout != "LC":
            raise ShapeError(f"concat along tokens needs token sequences; got {first.describe()}")
        axis = self.dim(first) - 1
        for other in inputs[1:]:
            rest = [d for i, d in enumerate(other.dims) if i != axis]
            if other.layout != first.layout or rest != [
                d for i, d in enumerate(first.dims) if i != axis
            ]:
                shapes = ", ".join(str(s) for s in inputs)
                raise ShapeError(
                    f"cannot concat {shapes} along {self.axis}: all other axes must match"
                )
        dims = list(first.dims)
        dims[axis] = sum(s.dims[axis] for s in inputs)
        return Shape(first.layout, tuple(dims))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        import torch

        return graph.call_function(torch.cat, (list(args),), {"dim": self.dim(inputs[0])})
