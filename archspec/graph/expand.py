"""Expansion: a Spec walked into pending op nodes with dotted names, references, places and
parts. Blocks are instantiated, stages repeated, groups flattened, `when` switches decided.

Structure may depend on shapes: a `when`, a `repeat` or a parameter default reading
`in_channels`, `in_height` or `in_width` asks the shape inference (infer.py) for the shape of
the block's input, which is an earlier node, so structure is decided in graph order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from archspec.errors import GraphError, Problem, unknown_message
from archspec.graph.node import INPUT, PartKind, Place
from archspec.ops import get_op
from archspec.ops.split import Parts
from archspec.shape import Shape
from archspec.spec.expr import ExprError, evaluate, has_expression
from archspec.spec.limits import MAX_NODES
from archspec.spec.model import Item, ParamDef, Spec
from archspec.spec.yamlsource import PathKey, Source

_PARAM_TYPES: dict[str, TypeAdapter] = {
    "int": TypeAdapter(int),
    "channels": TypeAdapter(int),
    "kernel": TypeAdapter(int),
    "float": TypeAdapter(float),
    "bool": TypeAdapter(bool),
    "str": TypeAdapter(str),
    "pair": TypeAdapter(int | Annotated[list[int], Field(min_length=2, max_length=2)]),
    "list": TypeAdapter(list[int | float | bool | str]),
}
_TYPE_NAMES = {"pair": "an int or [h, w]", "list": "a list of numbers, booleans or strings"}


class ShapeUnknown(ExprError):
    """An expression read a shape that cannot be known at that point. `silent`: the cause (an
    upstream problem) is reported already."""

    def __init__(self, message: str = "", silent: bool = False):
        super().__init__(message)
        self.silent = silent


class DepthTotalUnknown(ExprError):
    """depth_total was read before expansion finished."""


@dataclass(eq=False)
class Ref:
    """A name used in `from:`, resolved once it is defined (forward references allowed)."""

    scope: Scope
    name: str
    path: PathKey
    target: str | None = None  # the node it resolved to, once known


@dataclass(eq=False)
class Scope:
    """Names visible to the items of one layers list."""

    input: str | Ref
    parent: Scope | None = None
    names: dict[str, str | Ref] = field(default_factory=dict)
    lexical: bool = True  # groups see their parent's names; blocks do not
    prefix: str = ""  # the dotted name of the group or block instance these items are in, with "."
    used: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)  # names of items switched off by `when`

    def lookup(self, name: str) -> str | Ref | None:
        if name == INPUT:
            return self.input
        scope = self.defining(name)
        return None if scope is None else scope.names[name]

    def defining(self, name: str) -> Scope | None:
        """The scope whose items define `name` (this one or, lexically, an enclosing one)."""
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope
            scope = scope.parent if scope.lexical else None
        return None

    def known(self) -> list[str]:
        names: list[str] = []
        scope: Scope | None = self
        while scope is not None:
            names += list(scope.names)
            scope = scope.parent if scope.lexical else None
        return names


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


def shape_names(shape: Callable[[], Shape]) -> dict[str, Lazy]:
    """`in_channels`, `in_height`, `in_width` of the shape `shape()` gives, read lazily."""

    def spatial(axis: int) -> int:
        s = shape()
        if s.layout not in ("CHW", "HWC"):
            name = ("in_height", "in_width")[axis]
            raise ExprError(f"{name}: the input is {s.describe()} {s}, without height and width")
        return s.spatial[axis]

    return {
        "in_channels": Lazy(lambda: shape().channels),
        "in_height": Lazy(lambda: spatial(0)),
        "in_width": Lazy(lambda: spatial(1)),
    }


@dataclass(eq=False)
class Pending:
    """An op node as expansion leaves it: parameters not yet evaluated, inputs not resolved."""

    name: str
    item: Item
    path: PathKey
    env: Env
    inputs: list[str | Ref]
    place: Place
    part: int | None = None  # reads part `part` of its input, a split or chunk (`from: a.1`)


@dataclass(frozen=True)
class _Within:
    """The place context while expanding: the outermost block item around, or the outermost
    group without blocks."""

    stage: str | None = None
    instance: str | None = None
    block: str | None = None
    repeat: int | None = None
    plain: str | None = None

    def place(self, name: str) -> Place:
        if self.block is not None:
            assert self.stage is not None and self.instance is not None
            return Place(self.stage, self.instance, self.block, self.repeat)
        group = self.plain or name
        return Place(group, group)


_FAILED = object()  # an eager expression whose error is recorded already


class Expander:
    """Phase 1 of build_graph: walks the spec; `shape_of` answers shape questions (infer.py)."""

    def __init__(self, spec: Spec, options: Mapping[str, Any]):
        self.spec = spec
        self.source = spec._source or Source(None, spec.file)
        self.nodes: dict[str, Pending] = {}
        self.parts: dict[str, tuple[PartKind, PathKey, str | Ref]] = {}
        self.repeats: dict[str, int] = {}  # repeated groups and stages: how many instances
        self.passed: dict[str, str | Ref] = {}  # switched-off named items: the input they pass
        self.problems: list[Problem] = []
        self.depth_index = 0
        self.max_nodes = MAX_NODES.value  # read once: the environment variable may set it
        self.finished = False
        self.max_nodes = MAX_NODES.value  # read once: it is an environment lookup
        self.shape_of: Callable[[str | Ref], Shape] = _no_shapes
        self.env = Env(self._options(options))

    def run(self) -> tuple[Scope, str | Ref]:
        """Expand the top-level layers; the scope of their names and the last item's output."""
        top = Scope(INPUT)
        last = self.expand(self.spec.layers, ("layers",), top, "", self.env, _Within())
        self.finished = True
        return top, last

    # --- options and typed values ------------------------------------------------------------
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
        h, w = self.spec.input.hw
        values.update(in_channels=self.spec.input.channels, in_height=h, in_width=w)
        return values

    def _depth_total(self) -> int:
        if not self.finished:
            raise DepthTotalUnknown(
                "depth_total is only known after expansion; not usable in when/repeat"
            )
        return self.depth_index

    def _typed(self, value: Any, pdef: ParamDef, name: str, path: PathKey) -> Any:
        try:
            value = _PARAM_TYPES[pdef.type].validate_python(value, strict=pdef.type != "float")
        except ValidationError as exc:
            expected = _TYPE_NAMES.get(pdef.type, pdef.type)
            raise GraphError(
                f"{name}: expected {expected}, got {value!r}", self.spec.locate(path)
            ) from exc
        if pdef.type in ("channels", "kernel") and value < 1:
            raise GraphError(
                f"{name}: {pdef.type} must be >= 1 (got {value})", self.spec.locate(path)
            )
        return value

    # --- the walk ----------------------------------------------------------------------------
    def expand(
        self, items: list[Item], base: PathKey, scope: Scope, prefix: str, env: Env, within: _Within
    ) -> str | Ref:
        previous: str | Ref = scope.input
        position = 0  # unnamed items are numbered like nn.Sequential: skipped ones take no number
        for index, item in enumerate(items):
            path = base + (index,)
            switch = True if item.when is None else self._eager(item.when, env, path + ("when",))
            if switch is _FAILED or not switch:
                # a skipped item is removed: its name stands for its input, and the flow goes
                # on from the item before it (a switched-off shortcut `from: input` at the end
                # of a block does not make the block's output its input)
                skipped = self._inputs(item, scope, previous, path)
                if item.name:
                    scope.skipped.add(item.name)
                if len(skipped) == 1 and item.name:
                    scope.names[item.name] = skipped[0]
                    self.passed[prefix + item.name] = skipped[0]
                continue
            local = item.name or str(position)
            position += 1
            if local in scope.used:
                self.fail(path + ("name",), f"name {local!r} is used twice in this list")
                continue
            scope.used.add(local)
            inputs = self._inputs(item, scope, previous, path)
            out = self._item(item, path, scope, prefix + local, env, inputs, within)
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
        self,
        item: Item,
        path: PathKey,
        scope: Scope,
        name: str,
        env: Env,
        inputs: list[str | Ref],
        within: _Within,
    ) -> str | Ref:
        if item.op is not None:
            self.nodes[name] = Pending(name, item, path, env, inputs, within.place(name))
            if len(self.nodes) > self.max_nodes:  # a repeat only known during expansion
                raise MAX_NODES.error(
                    f"this spec expands to more than {self.max_nodes:,} nodes",
                    self.spec.locate(path),
                )
            self.parts[name] = ("op", path, name)
            return name
        if len(inputs) != 1:
            self.fail(path + ("from",), "a block or group takes one input; merge branches first")
            return name
        repeat: Any = 1
        if item.repeat is not None:
            repeat = self._eager(item.repeat, env, path + ("repeat",))
            if repeat is _FAILED:
                return inputs[0]
            if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
                self.fail(path + ("repeat",), f"repeat must be a positive integer (got {repeat!r})")
                return inputs[0]
            if repeat > self.max_nodes:
                where = self.spec.locate(path + ("repeat",))
                MAX_NODES.check(repeat, "repeat: this stage expands to at least", where)
        kind: PartKind = "group" if item.layers is not None else "block"
        current = inputs[0]
        for i in range(repeat):
            instance = f"{name}.{i}" if item.repeat is not None else name
            # repeats and block instances bind their own index; a plain group inherits it
            counted = env
            if item.repeat is not None or item.block is not None:
                counted = env.child(index=i, depth_index=self.depth_index)
            if item.repeat is not None:
                self.depth_index += 1
            inner = within
            if item.layers is not None:
                if within.block is None and within.plain is None and not _has_blocks(item.layers):
                    inner = replace(within, plain=instance)
                child = Scope(current, parent=scope, lexical=True, prefix=instance + ".")
                current = self.expand(
                    item.layers, path + ("layers",), child, instance + ".", counted, inner
                )
            else:
                if within.block is None:
                    index = i if item.repeat is not None else None
                    inner = _Within(name, instance, item.block, index)
                current = self._block(item, path, current, instance + ".", counted, i == 0, inner)
            if item.repeat is not None:
                self.parts[instance] = (kind, path, current)
        self.parts[name] = (kind, path, current)
        if item.repeat is not None:
            self.repeats[name] = repeat
        return current

    def _block(
        self,
        item: Item,
        path: PathKey,
        current: str | Ref,
        prefix: str,
        caller: Env,
        first: bool,
        within: _Within,
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
        block_input = shape_names(Lazy(lambda: self.shape_of(current)).force)
        # args are evaluated where they are written, but `in_channels` is this instance's input
        caller = caller.child(**block_input)
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
            elif not has_expression(pdef.default):
                values[key] = pdef.default
        builtins = {
            k: caller.values[k]
            for k in ("index", "depth_index", "depth_total")
            if k in caller.values
        }
        env = Env({**self.env.values, **builtins, **values, **block_input})
        # a default may be derived from the block's input: `default: ${in_channels // 4}`
        derived = {
            key: self._lazy_arg(pdef.default, pdef, key, ("blocks", item.block, "params", key), env)
            for key, pdef in block.params.items()
            if key not in args and has_expression(pdef.default)
        }
        env = env.child(**derived)
        scope = Scope(current, lexical=False, prefix=prefix)
        layers = ("blocks", item.block, "layers")
        return self.expand(block.layers, layers, scope, prefix, env, within)

    # --- expressions -------------------------------------------------------------------------
    def _lazy_arg(self, raw: Any, pdef: ParamDef, key: str, path: PathKey, caller: Env) -> Any:
        if not has_expression(raw):
            return self._typed(raw, pdef, key, path)
        return Lazy(lambda: self._typed(self.evaluate(raw, caller, path), pdef, key, path))

    def evaluate(self, raw: Any, env: Env, path: PathKey) -> Any:
        """The value of `raw`; ExprErrors become located GraphErrors (ShapeUnknown that is
        `silent` passes through: its cause is reported already)."""
        try:
            return evaluate(raw, env)
        except ShapeUnknown as exc:
            if exc.silent:
                raise
            raise self._located(exc, path) from exc
        except ExprError as exc:
            raise self._located(exc, path) from exc

    def _located(self, exc: ExprError, path: PathKey) -> GraphError:
        return GraphError(f"{'.'.join(map(str, path))}: {exc}", self.spec.locate(path))

    def _eager(self, raw: Any, env: Env, path: PathKey) -> Any:
        try:
            return self.evaluate(raw, env, path)
        except ShapeUnknown:
            return _FAILED
        except GraphError as exc:
            self.problems.extend(exc.problems)
            return _FAILED

    def fail(self, path: PathKey, message: str, key: bool = False) -> None:
        self.problems.append(Problem(self.spec.locate(path, key), message))

    # --- references ---------------------------------------------------------------------------
    def resolve(self, ref: str | Ref, report: bool = True) -> str | None:
        """The node a reference stands for (following switched-off items), or None: reported
        as a problem when `report`, else it may be defined later."""
        chain: list[Ref] = []
        while isinstance(ref, Ref):
            if ref.target is not None:
                ref = ref.target
                break
            if ref in chain:
                if report:
                    self.fail(ref.path, f"from: {ref.name!r} refers to itself")
                return None
            target = ref.scope.lookup(ref.name)
            if target is None and "." in ref.name:
                target = self._dotted(ref, report)
                if target is None:
                    return None
            if target is None:
                if report:
                    self.fail(
                        ref.path,
                        f"from: no layer named {ref.name!r} here" + _suggest(ref.name, ref.scope),
                    )
                return None
            chain.append(ref)
            ref = target
        for r in chain:
            r.target = ref
        return ref

    def _dotted(self, ref: Ref, report: bool) -> str | Ref | None:
        """`group.layer` (nested: `a.b.c`): the output of the layer `layer` inside the group or
        block instance `group`, the dotted path being its module path (unnamed items by
        position, `stage.2` instance 2 of a repeated stage); `name.i` after a split or chunk
        is part i of it. None (reported when `report`) where the path leads nowhere."""
        head, *rest = ref.name.split(".")
        scope = ref.scope.defining(head)
        if scope is None or head in scope.skipped:
            if report and head == INPUT:
                self.fail(
                    ref.path,
                    f"from: {ref.name!r}: the input has one output; `.{rest[0]}` reads a part "
                    "of a split or chunk, or a layer inside a group",
                )
            elif report:
                why = (
                    f"{head!r} is switched off (when), nothing inside it can be read"
                    if scope is not None
                    else f"no layer named {head!r} here" + _suggest(head, ref.scope)
                )
                self.fail(ref.path, f"from: {ref.name!r}: {why}")
            return None
        walked = scope.prefix + head
        for k, step in enumerate(rest):
            op = self.nodes.get(walked)
            if op is not None:  # an op: only a split or chunk has parts to read
                if k == len(rest) - 1 and issubclass(get_op(op.item.op or ""), Parts):
                    return self._part(walked, step, ref, report)
                if report:
                    self.fail(
                        ref.path,
                        f"from: {ref.name!r}: {_local(walked, scope)!r} is a {op.item.op} with one "
                        f"output; `.{step}` reads a part of a split or chunk, or a layer inside "
                        "a group",
                    )
                return None
            inner = f"{walked}.{step}"
            if inner not in self.parts and walked in self.repeats:
                if report:
                    n = self.repeats[walked]
                    times = f"{n} time{'s' * (n > 1)}"
                    self.fail(
                        ref.path,
                        f"from: {ref.name!r}: {_local(walked, scope)!r} repeats {times}; `.i` "
                        f"reads instance i (0 to {n - 1}), `.i.layer` a layer inside it",
                    )
                return None
            if inner in self.passed and inner not in self.parts and k == len(rest) - 1:
                return self.passed[inner]  # switched off: its name stands for its input
            if inner not in self.parts:
                if report:
                    known = {
                        n[len(walked) + 1 :].split(".")[0]
                        for n in self.parts
                        if n.startswith(walked + ".")
                    }
                    self.fail(
                        ref.path,
                        f"from: {ref.name!r}: {_local(walked, scope)!r} has no layer {step!r}"
                        + (_did_you_mean(step, known) if known else ""),
                    )
                return None
            walked = inner
        return walked if walked in self.nodes else self.parts[walked][2]

    def _part(self, source: str, index: str, ref: Ref, report: bool) -> str | None:
        """Part `index` of the split or chunk `source`: the node reading it, added on first use."""
        if not index.isdigit():
            if report:
                self.fail(ref.path, f"from: {ref.name!r}: a part of a split is read by its number")
            return None
        split = self.nodes[source]
        name = f"{source}.{index}"
        if name not in self.nodes:
            self.nodes[name] = Pending(
                name, split.item, ref.path, split.env, [source], split.place, int(index)
            )
        return name

    def parts_resolved(self) -> dict[str, tuple[PartKind, PathKey, str]]:
        resolved = {}
        for name, (kind, path, out) in self.parts.items():
            node = self.resolve(out, report=False)
            if node is not None:
                resolved[name] = (kind, path, node)
        return resolved


def _no_shapes(ref: str | Ref) -> Shape:
    raise ShapeUnknown("shapes are not available")


def _has_blocks(items: list[Item]) -> bool:
    return any(
        it.block is not None or (it.layers is not None and _has_blocks(it.layers)) for it in items
    )


def _local(name: str, scope: Scope) -> str:
    """`name` as written in the scope's `from:` (without the prefix of the scope's own block)."""
    return name[len(scope.prefix) :] if name.startswith(scope.prefix) else name


def _did_you_mean(name: str, known: set[str]) -> str:
    message = unknown_message("", name, known)
    return "; " + message.split("; ", 1)[1]


def _suggest(name: str, scope: Scope) -> str:
    known = scope.known()
    message = unknown_message("", name, known + [INPUT]) if known else ""
    return "; " + message.split("; ", 1)[1] if "; did you mean" in message else ""
