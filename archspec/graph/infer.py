"""Shape inference over the pending nodes of an expansion: each node's parameters evaluated (they
may read `in_channels` of its own input), its op validated, its output shape inferred.

Two ways in: `shape_of` while expansion runs (a `when`, `repeat` or default read a block's input
shape; that node and what it depends on are inferred first), then `infer_all` in graph order
for the rest. A node whose parameters read `depth_total` gets a provisional shape during
expansion (that parameter at its default) and is checked again once depth_total is known.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from archspec.errors import GraphError, Problem
from archspec.graph.expand import DepthTotalUnknown, Expander, Ref, ShapeUnknown, shape_names
from archspec.graph.node import INPUT
from archspec.ops import ShapeError, get_op
from archspec.ops.base import Op
from archspec.ops.split import Parts
from archspec.shape import Shape
from archspec.spec.expr import is_expression
from archspec.spec.load import pydantic_problems


class ShapeInference:
    """Shapes and validated ops of an Expander's nodes; problems go to `expander.problems`."""

    def __init__(self, expander: Expander, input_shape: Shape):
        self.expander = expander
        self.spec = expander.spec
        self.problems = expander.problems
        self.shapes: dict[str, Shape | None] = {INPUT: input_shape}  # None: failed, reported
        self.ops: dict[str, Op] = {}
        self.inputs: dict[str, list[str]] = {}
        self.provisional: set[str] = set()  # shapes inferred with depth_total unknown
        expander.shape_of = self.shape_of

    # --- while expanding ---------------------------------------------------------------------
    def shape_of(self, ref: str | Ref) -> Shape:
        """The output shape of the node `ref` stands for, inferring it (and what it reads)."""
        name = self.expander.resolve(ref, report=self.expander.finished)
        if name is None:
            if self.expander.finished:
                raise ShapeUnknown(silent=True)
            assert isinstance(ref, Ref)
            raise ShapeUnknown(_later(ref))
        shape = self._demand(name)
        if shape is None:
            raise ShapeUnknown(silent=True)
        return shape

    def _demand(self, name: str) -> Shape | None:
        stack, waiting = [name], set()
        while stack:
            current = stack[-1]
            if current in self.shapes:
                stack.pop()
                continue
            if current not in self.expander.nodes:
                return None  # a failed block or group, reported already
            inputs = self._resolved_inputs(current)
            todo = [i for i in inputs if i not in self.shapes]
            if todo:
                if current in waiting:
                    raise ShapeUnknown(
                        f"the shape of {name} depends on itself (a cycle through from:)"
                    )
                waiting.add(current)
                stack.extend(todo)
                continue
            self._infer(current, inputs)
            stack.pop()
        return self.shapes.get(name)

    def _resolved_inputs(self, name: str) -> list[str]:
        if name in self.inputs:
            return self.inputs[name]
        pending = self.expander.nodes[name]
        resolved = []
        for ref in pending.inputs:
            target = self.expander.resolve(ref, report=False)
            if target is None:
                assert isinstance(ref, Ref)
                raise ShapeUnknown(_later(ref))
            resolved.append(target)
        self.inputs[name] = resolved
        return resolved

    # --- in graph order ----------------------------------------------------------------------
    def infer_all(self, order: list[str], inputs: dict[str, list[str]]) -> None:
        """Infer every node not inferred yet; re-check provisional ones."""
        for name in order:
            if name == INPUT:
                continue
            if name in self.provisional:
                before = self.shapes.pop(name)
                self.provisional.discard(name)
                self._infer(name, inputs[name])
                after = self.shapes.get(name)
                if after is not None and after != before:
                    self.expander.fail(
                        self.expander.nodes[name].path,
                        f"node {name}: its shape {after} depends on depth_total, but the "
                        f"structure was decided with {before} (a cycle between structure and "
                        "shape)",
                    )
            elif name not in self.shapes:
                self._infer(name, inputs[name])

    # --- one node -----------------------------------------------------------------------------
    def _infer(self, name: str, inputs: list[str]) -> None:
        self.inputs[name] = inputs
        self.shapes[name] = None
        shapes = [self.shapes.get(i) for i in inputs]
        if not shapes or any(s is None for s in shapes):
            return  # an upstream problem was reported already
        pending = self.expander.nodes[name]
        if pending.part is not None:
            self._infer_part(name, pending.part, inputs[0], shapes[0])  # type: ignore[arg-type]
            return
        op_cls = get_op(pending.item.op or "")
        first: Shape = shapes[0]  # type: ignore[assignment]
        params: dict[str, Any] = pending.item.params
        env = None
        deferred = False
        for key, raw in params.items():
            if not (is_expression(raw) or isinstance(raw, list)):
                continue  # a literal: validated with the op below
            if env is None:
                env = pending.env.child(**shape_names(lambda: first))
                params = dict(params)
            try:
                params[key] = self.expander.evaluate(raw, env, pending.path + (key,))
            except ShapeUnknown:
                return
            except GraphError as exc:
                if isinstance(exc.__cause__, DepthTotalUnknown) and not self.expander.finished:
                    deferred = True  # this parameter keeps its default until depth_total is known
                    del params[key]
                    continue
                self.problems.extend(
                    Problem(p.location, f"node {name}: {p.message}") for p in exc.problems
                )
                return
        try:
            op = op_cls.model_validate(params)
        except ValidationError as exc:
            if deferred:
                del self.shapes[name]
                raise ShapeUnknown(
                    f"the shape of {name} needs depth_total, which is known only after "
                    "expansion (a cycle between structure and shape)"
                ) from None
            source = self.expander.source
            for p in pydantic_problems(exc, source, op_cls, pending.path):
                self.problems.append(Problem(p.location, f"node {name}: {p.message}"))
            return
        try:
            op.check_inputs(shapes)  # type: ignore[arg-type]
            shape = op.infer(shapes)  # type: ignore[arg-type]
        except ShapeError as exc:
            if deferred:
                del self.shapes[name]
                raise ShapeUnknown(
                    f"the shape of {name} needs depth_total, which is known only after "
                    "expansion (a cycle between structure and shape)"
                ) from None
            self.expander.fail(pending.path, f"node {name}: {exc}{self._cause(inputs)}")
            return
        self.ops[name] = op
        self.shapes[name] = shape
        if deferred:
            self.provisional.add(name)

    def _cause(self, inputs: list[str]) -> str:
        """For a node reading several inputs whose shapes do not fit: where each comes from,
        and the classic cause, an input op's own parameter reading `in_channels` (there the
        op's own input, not the block's)."""
        if len(inputs) < 2:
            return ""
        named = "from " + ", ".join(inputs)
        for i in inputs:
            pending = self.expander.nodes.get(i)
            if pending is None or pending.part is not None:
                continue
            for key, raw in pending.item.params.items():
                if is_expression(raw) and "in_channels" in str(raw):
                    seen = self.shapes.get(self.inputs.get(i, [None])[0] or "")
                    got = f" ({seen.channels})" if seen is not None else ""
                    return (
                        f" ({named}; note: {i}.{key} {raw!r} reads the in_channels of "
                        f"{i}'s own input{got}: inside an op's parameters in_channels is that "
                        "op's input, not the block's)"
                    )
        return f" ({named})"

    def _infer_part(self, name: str, index: int, source: str, shape: Shape) -> None:
        """`split.i`: the op reading part i (a narrow of the channels), from the split's op."""
        split = self.ops.get(source)
        if not isinstance(split, Parts):
            return  # the split itself failed, reported already
        try:
            op = split.part(index, [shape])
            self.shapes[name] = op.infer([shape])
        except ShapeError as exc:
            self.expander.fail(self.expander.nodes[name].path, f"from: {name}: {exc}")
            return
        self.ops[name] = op


def _later(ref: Ref) -> str:
    return (
        f"this needs the shape of {ref.name!r}, which is defined later: structure (when, "
        "repeat, parameter defaults) is decided in graph order and may read the shapes of "
        "earlier items only"
    )
