"""A traced graph reordered so that each module's calls run together, as a spec group runs: HRNet
calls the entries of a module list one by one and sums their outputs in between. Only pure ops
move, and only as far as their data allow; in-place ops keep their place against every reader of
the tensor they overwrite. Ops of a parent that must stay between the calls of a list's entries
(HRNet's head: y = incre[i](x[i]) + down[i - 1](y)) become that list's own."""

from __future__ import annotations

import itertools

from torch import fx

from archspec.importer.capture import in_place, target_name
from archspec.importer.tree import OWNER, owner_path

# tensor methods and functions whose output shares its input's storage
_VIEWS = {
    "view", "reshape", "flatten", "permute", "transpose", "t", "unsqueeze", "squeeze", "expand",
    "narrow", "select", "chunk", "split", "unbind", "contiguous", "unflatten", "as_strided",
    "getitem", "movedim", "swapaxes", "view_as", "expand_as", "detach",
}  # fmt: skip


def _storage(node: fx.Node) -> set[fx.Node]:
    """The nodes whose outputs share `node`'s storage: up to the tensor it views, then down
    through every view of that."""
    root = node
    while (
        root.op in ("call_function", "call_method")
        and target_name(root) in _VIEWS
        and root.args
        and isinstance(root.args[0], fx.Node)
    ):
        root = root.args[0]
    found, stack = {root}, [root]
    while stack:
        for user in stack.pop().users:
            if user.op in ("call_function", "call_method") and target_name(user) in _VIEWS:
                if user not in found:
                    found.add(user)
                    stack.append(user)
    return found


def regroup(gm: fx.GraphModule) -> None:
    """Reorder `gm.graph` in place (a stable topological order keeping each module's calls
    together where the data allow), then give the parent's pure ops that still fall between
    a module list's entries to that list (node.meta[OWNER])."""
    nodes = list(gm.graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    modules = dict(gm.named_modules())
    after: dict[fx.Node, set[fx.Node]] = {n: set(n.all_input_nodes) for n in nodes}
    for n in nodes:
        if in_place(n, modules) and n.args and isinstance(n.args[0], fx.Node):
            for alias in _storage(n.args[0]):
                for reader in [alias, *alias.users]:
                    if reader is n:
                        continue
                    if index[reader] < index[n]:
                        after[n].add(reader)
                    else:
                        after[reader].add(n)
    output = nodes[-1]
    for n in nodes[:-1]:
        after[output].add(n)
    waiting = {n: len(after[n]) for n in nodes}
    users: dict[fx.Node, list[fx.Node]] = {n: [] for n in nodes}
    for n, before in after.items():
        for b in before:
            users[b].append(n)
    place = {n: tuple(owner_path(n)) for n in nodes}
    ready = [n for n in nodes if not waiting[n]]
    order: list[fx.Node] = []
    current: tuple[str, ...] = ()
    while ready:
        # continue the deepest open module where a ready node can; else the original order
        best = min(ready, key=lambda n: (-_common(place[n], current), index[n]))
        ready.remove(best)
        order.append(best)
        if best.op not in ("placeholder", "output", "get_attr") and "tensor_meta" in best.meta:
            current = place[best]
        for u in users[best]:
            waiting[u] -= 1
            if not waiting[u]:
                ready.append(u)
    assert len(order) == len(nodes), "regroup: the graph has a cycle"
    for previous, n in itertools.pairwise(order):
        previous.append(n)  # moves n right after previous
    gm.graph.lint()
    _adopt(order, place, modules)


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k


def _adopt(order: list[fx.Node], place: dict[fx.Node, tuple[str, ...]], modules: dict) -> None:
    """Pure ops of an ancestor between the first and last calls of a module become the
    module's own, outermost modules first; a module interleaved with anything else stays
    split (the tree builder reports it)."""
    tensors = [n for n in order if "tensor_meta" in n.meta and n.op not in ("placeholder",)]
    paths = sorted({place[n][:k] for n in tensors for k in range(1, len(place[n]) + 1)}, key=len)
    for path in paths:
        at = [i for i, n in enumerate(tensors) if place[n][: len(path)] == path]
        between = [
            tensors[i] for i in range(at[0], at[-1] + 1) if place[tensors[i]][: len(path)] != path
        ]
        if between and all(
            n.op in ("call_function", "call_method")
            and not in_place(n, modules)
            and path[: len(place[n])] == place[n]
            for n in between
        ):
            for n in between:
                n.meta[OWNER] = list(path)
                place[n] = path
