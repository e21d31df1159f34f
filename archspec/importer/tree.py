"""The traced graph as a tree of archspec items: one inline group per module call, named as the
module is, each op named after its module (so state_dict keys are the source's), and the data
flow written as `from:` only where it is not the previous item."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from torch import fx, nn

from archspec.importer.capture import ImportSourceError
from archspec.importer.mapping import (
    Mapped,
    Unmapped,
    folded,
    is_tensor,
    map_function,
    map_module,
    parameter_item,
)

INPUT_VALUE = "<input>"
INTERLEAVED = "module list called entry by entry, between other ops"
OWNER = "archspec_owner"  # node.meta: the module whose group a parent op joins (order.py)


@dataclass(eq=False)
class Leaf:
    name: str
    item: dict[str, Any]  # {op: ..., fields}
    inputs: list[str]  # value ids read
    value: str  # the value id it produces
    stateful: bool
    generated: bool  # the name was made up (a function), not a module's
    parent: Group | None = None
    sources: list[str] | None = None  # `from:` names, resolved by `resolve`


@dataclass(eq=False)
class Group:
    name: str
    path: str
    module_class: str
    entries: list[Leaf | Group] = field(default_factory=list)
    parent: Group | None = None
    closed: bool = False
    closed_by: str = ""  # the module path whose op came next and closed this group
    closed_in: tuple[str, ...] = ()  # the modules whose forward that op ran in
    closed_at: fx.Node | None = None  # the node of that op
    input_value: str | None = None
    sources: list[str] | None = None

    @property
    def value(self) -> str:
        return self.entries[-1].value

    def leaves(self) -> list[Leaf]:
        out: list[Leaf] = []
        for e in self.entries:
            out.extend(e.leaves() if isinstance(e, Group) else [e])
        return out


Entry = Leaf | Group


class Problems:
    """Unmapped module types and functions: count and first place of each."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.first: dict[str, str] = {}
        self.why: dict[str, str] = {}

    def add(self, what: str, where: str, why: str = "") -> None:
        self.count[what] += 1
        self.first.setdefault(what, where)
        if why:
            self.why.setdefault(what, why)

    def lines(self) -> list[str]:
        return [
            f"unmapped {what}: {n} use{'s' if n > 1 else ''}, first at {self.first[what]}"
            + (f" ({self.why[what]})" if what in self.why else "")
            for what, n in self.count.most_common()
        ]


def _stack(node: fx.Node) -> tuple[str, ...]:
    """The modules whose forward `node` runs in, outermost first."""
    stack = node.meta.get("nn_module_stack") or {}
    return tuple(re.sub(r"@\d+$", "", key) for key in stack)


def owner_path(node: fx.Node) -> list[str]:
    """The module whose group `node` joins: a called module's or parameter's parent, else the
    module whose forward it runs in."""
    if OWNER in node.meta:  # an op of a parent run between a module list's entries (order.py)
        return list(node.meta[OWNER])
    if node.op in ("call_module", "get_attr"):
        return str(node.target).split(".")[:-1]
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return []
    key = list(stack)[-1]
    return re.sub(r"@\d+$", "", key).split(".") if key else []


def _op_name(item: dict[str, Any]) -> str:
    return str(item["op"])


class TreeBuilder:
    """`reopen`: a closed group whose next entry reads a value computed since it closed takes
    that entry (see `_group`); the importer asks for it once the trace is reordered."""

    def __init__(self, gm: fx.GraphModule, source: nn.Module | None = None, reopen: bool = False):
        self.gm = gm
        self.reopen = reopen
        self.position = {n: i for i, n in enumerate(gm.graph.nodes)}
        self.modules = dict((source or gm).named_modules())
        self.root = Group("", "", type(gm).__name__)
        self.groups: dict[str, Group] = {"": self.root}
        self.open_path: list[str] = []
        self.alias: dict[str, str] = {}
        self.producer: dict[str, Leaf] = {}
        self.problems = Problems()
        self.outputs: list[str] = []
        self.called: set[str] = set()
        self.interleaved = False  # a module list's entries ran between other ops (order.py)

    def value(self, node: fx.Node) -> str:
        name = node.name
        while name in self.alias:
            name = self.alias[name]
        return name

    def _group(self, node: fx.Node) -> Group:
        """The group `node` joins, opening it (and closing the groups left) as needed. A closed
        group is opened again where `reopen` allows it: Res2Net's `convs` and `bns` lists are
        called entry by entry, in turn (convs[i + 1] reads bns[i]'s output, summed with the
        next split), and no reordering keeps either list's calls together; as a spec, each
        entry stays in its list's group and reads the later item of the parent by `from:`."""
        path, stack = owner_path(node), _stack(node)
        common = 0
        while (
            common < min(len(path), len(self.open_path)) and path[common] == self.open_path[common]
        ):
            common += 1
        for depth in range(len(self.open_path), common, -1):
            closing = self.groups[".".join(self.open_path[:depth])]
            closing.closed, closing.closed_by = True, ".".join(path)
            closing.closed_in, closing.closed_at = stack, _origin(node)
        group = self.root
        for depth in range(1, len(path) + 1):
            key = ".".join(path[:depth])
            child = self.groups.get(key)
            if child is None:
                module = self.modules.get(key)
                child = Group(path[depth - 1], key, type(module).__name__ if module else "")
                child.parent = group
                group.entries.append(child)
                self.groups[key] = child
            elif child.closed:
                split = _Split(key, child.closed_by, child.closed_in, stack)
                if not self._reopens(child, node, split):
                    raise split
                child.closed = False
            group = child
        self.open_path = list(path)
        return group

    def _reopens(self, group: Group, node: fx.Node, split: _Split) -> bool:
        """Whether `node`, an entry of a module list whose calls other ops split, may join its
        closed `group` again: it reads a value computed since the group closed, so it cannot
        run with the group's earlier entries, and a spec says the same with `from:`. Where it
        reads nothing new, the reordering (order.py) could have moved it and did not: that
        stays refused, as do parameters read directly and modules called from another
        module's forward (`_Split.problem`)."""
        if not self.reopen or group.closed_at is None or node.op == "get_attr":
            return False
        if split.problem(reads_parameters=False)[0] != INTERLEAVED:
            return False
        since = self.position[group.closed_at]
        return any(
            self.position[n] >= since and n.op != "get_attr" for n in _origin(node).all_input_nodes
        )

    def _place(self, node: fx.Node) -> str:
        return (
            ".".join(owner_path(node) + [node.name])
            if node.op in ("call_function", "call_method")
            else str(node.target)
        )

    def add(
        self,
        node: fx.Node,
        mapped: Mapped,
        local: str,
        stateful: bool,
        generated: bool,
        after: str | None = None,
    ) -> None:
        if mapped.alias is not None:
            part = "" if mapped.part is None else f"|{mapped.part}"
            self.alias[node.name] = self.value(mapped.alias) + part
            return
        assert mapped.item is not None
        try:
            group = self._group(node)
        except _Split as split:
            problem = split.problem(node.op == "get_attr")
            self.interleaved |= problem[0] == INTERLEAVED
            self.problems.add(*problem)
            return
        used = {e.name for e in group.entries}
        name, k = local, 1
        while name in used:
            name, k = f"{local}_{k}", k + 1
        if stateful and name != local:
            self.problems.add("module called twice (shared weights)", str(node.target))
            return
        leaf = Leaf(
            name,
            mapped.item,
            [self.value(n) for n in mapped.inputs]
            if after is None
            else [after, *(self.value(n) for n in mapped.inputs)],
            node.name,
            stateful,
            generated,
            parent=group,
        )
        group.entries.append(leaf)
        self.producer[node.name] = leaf

    def build(self) -> Group:
        counters: Counter[tuple[str, str]] = Counter()
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if any(v == INPUT_VALUE for v in self.alias.values()):
                    if not node.users:
                        continue  # an optional argument the forward does not use
                    raise ImportSourceError("only models with one input can be imported")
                self.alias[node.name] = INPUT_VALUE
                continue
            if node.op == "output":
                result = node.args[0]
                results = list(result) if isinstance(result, (tuple, list)) else [result]
                for r in results:
                    if not isinstance(r, fx.Node):
                        raise ImportSourceError("the model returns something other than tensors")
                    self.outputs.append(self.value(r))
                continue
            if (
                not is_tensor(node)
                and not _makes_parts(node)
                and not (
                    node.op == "call_module"
                    and isinstance(self.modules.get(str(node.target)), nn.MultiheadAttention)
                )
            ):
                continue  # sizes, shapes and other values that are not tensors
            if folded(node):
                continue  # an index buffer that the op reading it holds
            if node.op == "get_attr" and str(node.target).startswith("_tensor_constant"):
                # a tensor torch.fx computed while tracing (MaxViT's `index.view(-1)`): not the
                # source's state; the op reading it holds it (relative_position_bias)
                continue
            try:
                if node.op == "get_attr":
                    value = (
                        self.gm.get_parameter(node.target)
                        if _is_param(self.gm, node)
                        else (self.gm.get_buffer(node.target))
                    )
                    mapped = Mapped(parameter_item(value, _is_param(self.gm, node)), [])
                    self.add(node, mapped, str(node.target).split(".")[-1], True, False)
                elif node.op == "call_module":
                    module = self.modules[str(node.target)]
                    mapped = map_module(module, node)
                    stateful = any(True for _ in module.state_dict())
                    local = str(node.target).split(".")[-1]
                    if isinstance(mapped.item, list):  # the first op holds the module's state
                        first, *rest = mapped.item
                        self.add(
                            _Step(node, 0), Mapped(first, mapped.inputs), local, stateful, False
                        )  # type: ignore[arg-type]
                        previous = f"{node.name}#0"
                        for k, item in enumerate(rest, 1):
                            last = k == len(rest)
                            self.add(
                                node if last else _Step(node, k),  # type: ignore[arg-type]
                                Mapped(item, []),
                                f"{local}_{item['op']}",
                                False,
                                True,
                                after=previous,
                            )
                            previous = node.name if last else f"{node.name}#{k}"
                        if not rest:
                            self.alias[node.name] = f"{node.name}#0"
                    else:
                        self.add(node, mapped, local, stateful, False)
                else:
                    mapped = map_function(node)
                    if mapped.name is not None:  # the op holds a buffer under that name
                        self.add(node, mapped, mapped.name, True, False)
                    elif mapped.item is not None:
                        owner = ".".join(owner_path(node))
                        chain = mapped.item if isinstance(mapped.item, list) else [mapped.item]
                        previous = ""
                        for k, item in enumerate(chain):
                            op = _op_name(item)
                            counters[(owner, op)] += 1
                            n = counters[(owner, op)]
                            last = k == len(chain) - 1
                            extra = mapped.extra[k - 1] if k and mapped.extra else []
                            step = Mapped(item, mapped.inputs if k == 0 else extra)
                            self.add(
                                node if last else _Step(node, k),  # type: ignore[arg-type]
                                step,
                                op if n == 1 else f"{op}_{n - 1}",
                                False,
                                True,
                                after=None if k == 0 else previous,
                            )
                            previous = node.name if last else f"{node.name}#{k}"
                    else:
                        self.add(node, mapped, "", False, True)
            except Unmapped as exc:
                self.problems.add(exc.what, self._place(node), exc.why)
                source = tensor_input(node)
                if source is not None:  # read on through its input, to find more problems
                    self.alias[node.name] = self.value(source)
        return self.root


def _below(entry: Entry) -> list[Leaf]:
    return entry.leaves() if isinstance(entry, Group) else []


class _Step:
    """Step k of a function that maps to a chain of ops (mean over H, W -> pool, flatten)."""

    def __init__(self, node: fx.Node, k: int):
        self.name, self.op, self.target = f"{node.name}#{k}", node.op, node.target
        self.meta, self.node = node.meta, node


def _origin(node: fx.Node | _Step) -> fx.Node:
    """The fx node itself, or the node whose chain `node` is a step of."""
    return node.node if isinstance(node, _Step) else node


def _makes_parts(node: fx.Node) -> bool:
    return node.target in ("chunk", "split") or getattr(node.target, "__name__", "") in (
        "chunk",
        "split",
    )


def tensor_input(node: fx.Node) -> fx.Node | None:
    for a in node.args:
        if isinstance(a, fx.Node):
            return a
    return None


def _is_param(gm: fx.GraphModule, node: fx.Node) -> bool:
    return str(node.target) in dict(gm.named_parameters())


class _Split(Exception):
    """Module `path` runs again (its op's forwards: `again`) after an op of module `between`
    (run inside the forwards of `within`) closed it: a spec group runs at once, start to end."""

    def __init__(self, path: str, between: str, within: tuple[str, ...], again: tuple[str, ...]):
        super().__init__(path)
        self.path, self.between, self.within, self.again = path, between, within, again

    def _under(self, module: str, path: str) -> bool:
        return path == "" or module == path or module.startswith(path + ".")

    def problem(self, reads_parameters: bool) -> tuple[str, str, str]:
        """(what, where, why) for the importer's one line about it."""
        if reads_parameters:  # Swin's attention: F.linear(x, self.qkv.weight, ...) in pieces
            return (
                "module called in two pieces or twice",
                self.path,
                f"its parameters are read directly, between {self.between or 'the model'}'s",
            )
        # CoaT's position encodings: one module's forward calls a module that is not its own
        callers = [m for m in self.within if self._under(m, self.path)]
        where = next((m for m in self.within if not self._under(m, self.path)), self.between)
        if not callers:
            inside = [i for i, m in enumerate(self.again) if self._under(m, self.path)]
            if inside and inside[0] > 0 and not self._under(self.path, self.again[inside[0] - 1]):
                callers, where = [self.again[inside[0] - 1]], self.path
        if callers:
            return (
                "module called from inside another module's forward",
                where,
                f"{callers[-1]} calls it, though it is not part of {callers[-1]}: a module "
                "shared between blocks, and a spec has no shared weights",
            )
        # a list whose entries run between its owner's ops, which reordering (order.py) could
        # not untangle: an in-place op between them, or another module's calls
        return (
            INTERLEAVED,
            self.path,
            f"{self.between or 'the model'} runs between the calls of its entries and reads "
            "each one's output; a spec group runs at once and has one output",
        )


# --- references ----------------------------------------------------------------------------


def resolve(root: Group, builder: TreeBuilder) -> list[str]:
    """Set every entry's `sources` (None: the previous item) and each group's input; returns the
    root's output names. Raises ImportSourceError where a value is read across a module's
    boundary in a way a spec cannot say."""
    owner: dict[str, Entry] = {}  # value -> the leaf producing it

    def index(group: Group) -> None:
        for e in group.entries:
            if isinstance(e, Group):
                index(e)
            else:
                owner[e.value] = e

    index(root)
    root.input_value = INPUT_VALUE

    def chain(e: Entry) -> list[Group]:
        out = []
        p = e.parent
        while p is not None:
            out.append(p)
            p = p.parent
        return out

    aliases: dict[tuple[int, str], str] = {}  # (scope, value) -> the identity naming it there

    def names_below(group: Group) -> set[str]:
        found = {e.name for e in group.entries}
        for e in group.entries:
            if isinstance(e, Group):
                found |= names_below(e)
        return found

    def alias(scope: Group, value: str, base: str, after: Entry | None) -> str:
        """An identity in `scope` (right after `after`, else first) under a name no group
        inside shadows: how an inner group reads a value of `scope` that its own name or
        `input` cannot reach (DLA's trees concatenate their parent's downsampled input)."""
        key = (id(scope), value)
        if key not in aliases:
            taken, k = names_below(scope), 1
            while f"{base}_{k}" in taken:
                k += 1
            leaf = Leaf(f"{base}_{k}", {"op": "identity"}, [value], f"{value}@{scope.path}",
                        False, True, parent=scope)  # fmt: skip
            at = scope.entries.index(after) + 1 if after is not None else 0
            scope.entries.insert(at, leaf)
            owner[leaf.value] = leaf
            aliases[key] = leaf.name
        return aliases[key]

    def shadowed(group: Group, scope: Group, name: str) -> bool:
        inner: Group | None = group
        while inner is not None and inner is not scope:
            if any(e.name == name for e in inner.entries):
                return True
            inner = inner.parent
        return False

    def inside(entry: Entry, producer: Leaf, value: str) -> list[str]:
        """The dotted path from `entry` down to the item whose output is `value`: a group read
        at an inner layer (HRNet's branches, each read by the fuse layers) is `group.layer`."""
        path = [entry.name]
        while entry.value != value:
            assert isinstance(entry, Group)
            entry = next(e for e in entry.entries if producer is e or producer in _below(e))
            path.append(entry.name)
        return path

    def name_in(group: Group, value: str) -> str:
        """How `group`'s items refer to `value`."""
        if value == group.input_value or (value == INPUT_VALUE and group is root):
            return "input"
        value, bar, part = value.partition("|")  # part i of a chunk or split: `name.i`
        suffix = f".{part}" if bar else ""
        producer = owner.get(value)
        if producer is None:
            raise ImportSourceError(
                f"{group.path or 'the model'} reads a value archspec cannot name"
            )
        # the entry of `group` (or of an ancestor, lexically) whose subtree produced it
        scope: Group | None = group
        while scope is not None:
            entry: Entry = producer
            while entry.parent is not None and entry.parent is not scope:
                entry = entry.parent
            if entry.parent is scope:
                if scope is not group and not bar and shadowed(group, scope, entry.name):
                    return alias(scope, value, entry.name, entry)
                return ".".join(inside(entry, producer, value)) + suffix
            if value + bar + part == scope.input_value:
                if scope is not group and not bar:  # `input` there is this group's own input
                    return alias(scope, value, f"{scope.name or 'model'}_input", None)
                return "input"
            scope = scope.parent
        raise ImportSourceError(f"{group.path}: cannot name an input")

    def external(group: Group, values: list[str]) -> None:
        for v in values:
            producer = owner.get(v.partition("|")[0])
            inside = producer is not None and group in chain(producer)
            if not inside and group.input_value is None:
                group.input_value = v

    def walk(group: Group) -> None:
        for e in group.entries:
            if isinstance(e, Group):
                for leaf in e.leaves():
                    external(e, leaf.inputs)
                # a group reading nothing from outside (only parameters): its input is its parent's
                if e.input_value is None:
                    e.input_value = group.input_value if group is not root else INPUT_VALUE
        previous, parts = group.input_value, False
        for e in list(group.entries):  # aliases may be inserted before e as inner groups resolve
            if isinstance(e, Group):
                walk(e)
                reads = [e.input_value]
            else:
                reads = e.inputs
            if not reads:  # a parameter: reads the previous item, uses nothing of it
                # (a chunk or split is read by its parts only: the group's input, then)
                e.sources = [name_in(group, group.input_value)] if parts else None  # type: ignore[arg-type]
            elif len(reads) == 1 and reads[0] == previous:
                e.sources = None
            else:
                e.sources = [name_in(group, v) for v in reads]
            previous = e.value
            parts = isinstance(e, Leaf) and e.item["op"] in ("chunk", "split")

    walk(root)
    return [name_in(root, v) for v in builder.outputs]
