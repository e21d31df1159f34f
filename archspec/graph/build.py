"""Expand a Spec into a networkx DAG of op nodes, then infer every node's shape statically.

Phase 1 walks the spec: blocks are instantiated, stages repeated, groups flattened, every node
named by its dotted path (`layer3.1.conv2`), references recorded. Phase 2 resolves references,
rejects cycles and dangling nodes, then visits nodes in topological order, evaluating their
parameters (which may use `in_channels`) and inferring shapes. Nothing here touches a tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
from pydantic import TypeAdapter, ValidationError

from archspec.errors import GraphError, Problem
from archspec.ops import ShapeError, get_op
from archspec.ops.base import unknown_message
from archspec.shape import Shape
from archspec.spec.expr import ExprError, evaluate, is_expression
from archspec.spec.limits import MAX_NODES, check_nodes, check_size
from archspec.spec.load import load_spec, pydantic_problems
from archspec.spec.model import Item, ParamDef, Spec
from archspec.spec.yamlsource import PathKey, Source

INPUT = "input"

_PARAM_TYPES: dict[str, TypeAdapter] = {
    "int": TypeAdapter(int),
    "channels": TypeAdapter(int),
    "kernel": TypeAdapter(int),
    "float": TypeAdapter(float),
    "bool": TypeAdapter(bool),
    "str": TypeAdapter(str),
}


@dataclass(eq=False)
class Ref:
    """A name used in `from:`, resolved once the whole spec is expanded (forward refs allowed)."""

    scope: Scope
    name: str
    path: PathKey


@dataclass(eq=False)
class Scope:
    """Names visible to the items of one layers list."""

    input: str | Ref
    parent: Scope | None = None
    names: dict[str, str | Ref] = field(default_factory=dict)
    lexical: bool = True  # groups see their parent's names; blocks do not
    used: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)  # names of items switched off by `when`

    def lookup(self, name: str) -> str | Ref | None:
        if name == INPUT:
            return self.input
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent if scope.lexical else None
        return None


class Lazy:
    """A value computed on first use (block arguments, in_channels, depth_total)."""

    def __init__(self, compute: Callable[[], Any]):
        self.compute = compute
        self.done = False
        self.value: Any = None

    def force(self) -> Any:
        if not self.done:
            self.value = self.compute()
            self.done = True
        return self.value


class Env(Mapping):
    """Names an expression may read: options, block parameters and built-ins."""

    def __init__(self, values: dict[str, Any]):
        self.values = values

    def child(self, **more: Any) -> Env:
        return Env({**self.values, **more})

    def __getitem__(self, name: str) -> Any:
        value = self.values[name]
        return value.force() if isinstance(value, Lazy) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


@dataclass(eq=False)
class Pending:
    """An op node between phase 1 and phase 2."""

    name: str
    item: Item
    path: PathKey
    env: Env
    inputs: list[str | Ref]


class _Builder:
    def __init__(self, spec: Spec, options: Mapping[str, Any]):
        self.spec = spec
        self.source = spec._source or Source(None, spec.file)
        self.nodes: dict[str, Pending] = {}
        self.problems: list[Problem] = []
        self.graph = nx.DiGraph(spec=spec)
        self.depth_index = 0
        self.shapes_ready = False
        self.env = Env(self._options(options))

    # --- phase 1 ---------------------------------------------------------------------------
    def _options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        defs = self.spec.options
        unknown = set(given) - set(defs)
        if unknown:
            name = sorted(unknown)[0]
            raise GraphError(
                unknown_message("option", name, defs) + " (options of this spec)",
                self.spec.locate(("options",)),
            )
        values: dict[str, Any] = {}
        for name, pdef in defs.items():
            path = ("options", name)
            if name in given:
                values[name] = self._typed(given[name], pdef, name, path)
            elif pdef.required:
                raise GraphError(f"option {name!r} has no default; pass it", self.spec.locate(path))
            else:
                values[name] = self._typed(pdef.default, pdef, name, path + ("default",))
        values["depth_total"] = Lazy(self._depth_total)
        values["in_channels"] = self.spec.input.channels
        return values

    def _depth_total(self) -> int:
        if not self.shapes_ready:
            raise ExprError("depth_total is only known after expansion; not usable in when/repeat")
        return self.depth_index

    def _typed(self, value: Any, pdef: ParamDef, name: str, path: PathKey) -> Any:
        try:
            value = _PARAM_TYPES[pdef.type].validate_python(value, strict=pdef.type != "float")
        except ValidationError as exc:
            raise GraphError(
                f"{name}: expected {pdef.type}, got {value!r}", self.spec.locate(path)
            ) from exc
        if pdef.type in ("channels", "kernel") and value < 1:
            raise GraphError(
                f"{name}: {pdef.type} must be >= 1 (got {value})", self.spec.locate(path)
            )
        return value

    def expand(
        self, items: list[Item], base: PathKey, scope: Scope, prefix: str, env: Env
    ) -> str | Ref:
        previous: str | Ref = scope.input
        position = 0  # unnamed items are numbered like nn.Sequential: skipped ones take no number
        for index, item in enumerate(items):
            path = base + (index,)
            if item.when is not None and not self._eager(item.when, env, path + ("when",)):
                # a skipped item passes its input through, under its own name too
                skipped = self._inputs(item, scope, previous, path)
                if item.name:
                    scope.skipped.add(item.name)
                if len(skipped) == 1:
                    previous = skipped[0]
                    if item.name:
                        scope.names[item.name] = previous
                continue
            local = item.name or str(position)
            position += 1
            if local in scope.used:
                self.fail(path + ("name",), f"name {local!r} is used twice in this list")
                continue
            scope.used.add(local)
            inputs = self._inputs(item, scope, previous, path)
            out = self._item(item, path, scope, prefix + local, env, inputs)
            if item.name:
                scope.names[item.name] = out
                scope.skipped.discard(item.name)
            previous = out
        return previous

    def _inputs(
        self, item: Item, scope: Scope, previous: str | Ref, path: PathKey
    ) -> list[str | Ref]:
        if item.from_ is None:
            return [previous]
        names = [item.from_] if isinstance(item.from_, str) else list(item.from_)
        return [Ref(scope, n, path + ("from",)) for n in names]

    def _item(
        self, item: Item, path: PathKey, scope: Scope, name: str, env: Env, inputs: list[str | Ref]
    ) -> str | Ref:
        if item.op is not None:
            self.nodes[name] = Pending(name, item, path, env, inputs)
            if len(self.nodes) > MAX_NODES.value:  # a repeat only known during expansion
                raise MAX_NODES.error(
                    f"this spec expands to more than {MAX_NODES.value:,} nodes",
                    self.spec.locate(path),
                )
            return name
        if len(inputs) != 1:
            self.fail(path + ("from",), "a block or group takes one input; merge branches first")
            return name
        repeat = 1 if item.repeat is None else self._eager(item.repeat, env, path + ("repeat",))
        if item.repeat is not None and (not isinstance(repeat, int) or repeat < 1):
            self.fail(path + ("repeat",), f"repeat must be a positive integer (got {repeat!r})")
            return name
        if repeat > MAX_NODES.value:
            where = self.spec.locate(path + ("repeat",))
            MAX_NODES.check(repeat, "repeat: this stage expands to at least", where)
        current = inputs[0]
        for i in range(repeat):
            inner = f"{name}.{i}." if item.repeat is not None else f"{name}."
            # repeats and block instances bind their own index; a plain group inherits it
            counted = env
            if item.repeat is not None or item.block is not None:
                counted = env.child(index=i, depth_index=self.depth_index)
            if item.repeat is not None:
                self.depth_index += 1
            if item.layers is not None:
                child = Scope(current, parent=scope, lexical=True)
                current = self.expand(item.layers, path + ("layers",), child, inner, counted)
            else:
                current = self._block(item, path, current, inner, counted, first=i == 0)
        return current

    def _block(
        self, item: Item, path: PathKey, current: str | Ref, prefix: str, caller: Env, first: bool
    ) -> str | Ref:
        assert item.block is not None
        block = self.spec.blocks.get(item.block)
        if block is None:
            self.fail(path + ("block",), unknown_message("block", item.block, self.spec.blocks))
            return current
        args = dict(item.args)
        arg_paths = {k: path + ("args", k) for k in args}
        if first:
            args.update(item.first)
            arg_paths.update({k: path + ("first", k) for k in item.first})
        values: dict[str, Any] = {}
        block_input = Lazy(lambda: self._channels_of(current))
        # args are evaluated where they are written, but `in_channels` is this instance's input
        caller = caller.child(in_channels=block_input)
        for key in args:
            if key not in block.params:
                self.fail(
                    arg_paths[key],
                    f"block {item.block!r} has no parameter {key!r}"
                    + unknown_message("", key, block.params).split("'", 2)[-1],
                )
        for key, pdef in block.params.items():
            if key in args:
                values[key] = self._lazy_arg(args[key], pdef, key, arg_paths[key], caller)
            elif pdef.required:
                self.fail(path + ("block",), f"block {item.block!r} needs argument {key!r}")
                return current
            elif not is_expression(pdef.default):
                values[key] = pdef.default
        builtins = {
            k: caller.values[k]
            for k in ("index", "depth_index", "depth_total")
            if k in caller.values
        }
        env = Env(
            {
                **self.env.values,
                **builtins,
                **values,
                "in_channels": block_input,
            }
        )
        # a default may be derived from the block's input: `default: ${in_channels // 4}`
        derived = {
            key: self._lazy_arg(pdef.default, pdef, key, ("blocks", item.block, "params", key), env)
            for key, pdef in block.params.items()
            if key not in args and is_expression(pdef.default)
        }
        env = env.child(**derived)
        scope = Scope(current, lexical=False)
        return self.expand(block.layers, ("blocks", item.block, "layers"), scope, prefix, env)

    def _lazy_arg(self, raw: Any, pdef: ParamDef, key: str, path: PathKey, caller: Env) -> Any:
        if not is_expression(raw):
            return self._typed(raw, pdef, key, path)
        return Lazy(lambda: self._typed(self._evaluate(raw, caller, path), pdef, key, path))

    def _evaluate(self, raw: Any, env: Env, path: PathKey) -> Any:
        try:
            return evaluate(raw, env)
        except ExprError as exc:
            raise GraphError(f"{'.'.join(map(str, path))}: {exc}", self.spec.locate(path)) from exc

    def _eager(self, raw: Any, env: Env, path: PathKey) -> Any:
        try:
            return self._evaluate(raw, env, path)
        except GraphError as exc:
            self.problems.extend(exc.problems)
            return False

    def fail(self, path: PathKey, message: str, key: bool = False) -> None:
        self.problems.append(Problem(self.spec.locate(path, key), message))

    # --- phase 2 ---------------------------------------------------------------------------
    def resolve(self, ref: str | Ref) -> str | None:
        seen: set[int] = set()  # a loop, not recursion: chains of skipped items can be long
        while isinstance(ref, Ref):
            target = ref.scope.lookup(ref.name)
            if target is None:
                self.fail(
                    ref.path,
                    f"from: no layer named {ref.name!r} here" + _suggest(ref.name, ref.scope),
                )
                return None
            if id(ref) in seen:
                return None
            seen.add(id(ref))
            ref = target
        return ref

    def _channels_of(self, ref: str | Ref) -> int:
        if not self.shapes_ready:
            raise ExprError(
                "in_channels is only known after shapes are inferred; it cannot decide when/repeat"
            )
        name = self.resolve(ref)
        shape = self.graph.nodes[name].get("shape") if name in self.graph else None
        if shape is None:
            raise ExprError("in_channels of this block is not known yet")
        return shape.channels

    def connect(self) -> None:
        g = self.graph
        g.add_node(
            INPUT,
            op=None,
            inputs=[],
            location=self.spec.locate(("input",)),
            path=("input",),
            shape=None,
        )
        for name in self.nodes:
            g.add_node(name)
        for name, pending in self.nodes.items():
            inputs = [self.resolve(r) for r in pending.inputs]
            if any(i is None for i in inputs):
                inputs = [i for i in inputs if i is not None]
            g.nodes[name].update(
                inputs=inputs, path=pending.path, location=self.spec.locate(pending.path)
            )
            for source in inputs:
                g.add_edge(source, name)

    def infer(self, outputs: list[str]) -> None:
        g = self.graph
        h, w = self.spec.input.hw
        g.nodes[INPUT]["shape"] = Shape.image(self.spec.input.channels, h, w)
        self.rank = {name: i for i, name in enumerate(self.nodes)}
        key = self._order_key
        try:
            # Expansion order is the sort's answer unless a `from:` names a later item.
            if all(key(u) < key(v) for u, v in g.edges):
                order = sorted(g.nodes, key=key)
            else:
                order = list(nx.lexicographical_topological_sort(g, key=key))
        except nx.NetworkXUnfeasible:
            cycle = [u for u, _ in nx.find_cycle(g)]
            first = self.nodes[cycle[0]]
            raise GraphError(
                f"node {cycle[0]}: cycle {' -> '.join(cycle + [cycle[0]])}",
                self.spec.locate(first.path),
            ) from None
        g.graph["order"] = order
        self.shapes_ready = True
        for name in order[1:] if order and order[0] == INPUT else order:
            if name == INPUT:
                continue
            self._infer_node(name)

    def _order_key(self, name: str) -> int:
        return self.rank.get(name, -1) + 1

    def _infer_node(self, name: str) -> None:
        g, pending = self.graph, self.nodes[name]
        shapes = [g.nodes[i].get("shape") for i in g.nodes[name]["inputs"]]
        if any(s is None for s in shapes) or not shapes:
            return  # an upstream problem was reported already
        op_cls = get_op(pending.item.op)
        env = pending.env.child(in_channels=Lazy(lambda: shapes[0].channels))
        params: dict[str, Any] = {}
        try:
            for key, raw in pending.item.params.items():
                params[key] = self._evaluate(raw, env, pending.path + (key,))
        except GraphError as exc:
            self.problems.extend(
                Problem(p.location, f"node {name}: {p.message}") for p in exc.problems
            )
            return
        try:
            op = op_cls.model_validate(params)
        except ValidationError as exc:
            for p in pydantic_problems(exc, self.source, op_cls, pending.path):
                self.problems.append(Problem(p.location, f"node {name}: {p.message}"))
            return
        try:
            op.check_inputs(shapes)
            shape = op.infer(shapes)
        except ShapeError as exc:
            self.fail(pending.path, f"node {name}: {exc}")
            return
        g.nodes[name].update(op=op, shape=shape)


def _suggest(name: str, scope: Scope) -> str:
    known: list[str] = []
    s: Scope | None = scope
    while s is not None:
        known += list(s.names)
        s = s.parent if s.lexical else None
    message = unknown_message("", name, known + [INPUT]) if known else ""
    return "; " + message.split("; ", 1)[1] if "; did you mean" in message else ""


def build_graph(spec: Spec | str, **options: Any) -> nx.DiGraph:
    """The validated, shape-annotated DAG of a spec; raises GraphError listing every problem."""
    spec = load_spec(spec)
    check_nodes(spec, options)  # before anything is expanded
    b = _Builder(spec, options)
    top = Scope(INPUT)
    last = b.expand(spec.layers, ("layers",), top, "", b.env)
    b.connect()
    outputs = _outputs(b, top, last)
    if b.problems:
        raise GraphError(b.problems)
    b.infer(outputs)
    if b.problems:
        raise GraphError(b.problems)
    _check_size(b)
    _check_reach(b, outputs)
    b.graph.graph["outputs"] = outputs
    b.graph.graph["input_shape"] = b.graph.nodes[INPUT]["shape"]
    return b.graph


def _check_size(b: _Builder) -> None:
    g = b.graph
    params = activations = 0
    largest, most = INPUT, -1
    for name in g.graph["order"]:
        data = g.nodes[name]
        size = data["shape"].numel
        if data["op"] is not None:
            size += data["op"].count_params([g.nodes[i]["shape"] for i in data["inputs"]])
            params += size - data["shape"].numel
        activations += data["shape"].numel
        if size > most:
            largest, most = name, size
    check_size(params, activations, (largest, g.nodes[largest]["location"]))


def _outputs(b: _Builder, top: Scope, last: str | Ref) -> list[str]:
    if b.spec.outputs is None:
        resolved = b.resolve(last)
        return [resolved] if resolved else []
    outs = []
    for i, name in enumerate(b.spec.outputs):
        if name in top.skipped:
            continue  # a head switched off by `when` (e.g. googlenet's aux_logits) is no output
        resolved = b.resolve(Ref(top, name, ("outputs", i)))
        if resolved:
            outs.append(resolved)
    return outs


def _check_reach(b: _Builder, outputs: list[str]) -> None:
    g = b.graph
    feeding = set(outputs)
    for out in outputs:
        feeding |= nx.ancestors(g, out)
    for name in g.graph["order"]:
        if name not in feeding:
            b.fail(
                b.nodes[name].path if name in b.nodes else ("input",),
                f"node {name}: its output is never used (it does not reach the model output)",
            )
    if INPUT not in feeding:
        b.fail(("input",), "the model output does not depend on the input")
    if b.problems:
        raise GraphError(b.problems)
