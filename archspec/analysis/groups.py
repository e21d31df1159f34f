"""Stages and block instances of a graph, for subtotals and collapsed pictures.

Read off the spec by following a node's dotted name through the items it was expanded from:
- a block instance is the outermost `block:` item a node sits in, with its repeat index
  (`layer3.2`, `features.denseblock1.5`, googlenet's `inception3a`);
- its stage is that item without the repeat index (`layer3`, `encoder.layers`);
- a node outside every block belongs to the outermost group around it that holds no blocks
  (efficientnet's stem `features.0`, vgg's `classifier`), else stands alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from archspec.graph import INPUT
from archspec.spec.model import Item, Spec


@dataclass(frozen=True)
class Place:
    """Where a node sits: its stage, its block instance and that instance's block."""

    stage: str
    instance: str
    block: str | None


def places(graph: nx.DiGraph) -> dict[str, Place]:
    """Place of every node (but the input), in graph order."""
    spec: Spec = graph.graph["spec"]
    return {n: _place(spec, n) for n in graph.graph["order"] if n != INPUT}


def _place(spec: Spec, name: str) -> Place:
    parts = name.split(".")
    items: list[Item] | None = spec.layers
    depth = 0
    plain: str | None = None  # the outermost group without blocks, if the node is in one
    while items is not None and depth < len(parts):
        index = next((k for k, it in enumerate(items) if (it.name or str(k)) == parts[depth]), None)
        if index is None:
            break
        item = items[index]
        stage = ".".join(parts[: depth + 1])
        depth += 1 if item.repeat is None else 2
        instance = ".".join(parts[:depth])
        if item.block is not None:
            return Place(stage, instance, item.block)
        if item.layers is None:
            break
        if plain is None and not _has_blocks(spec, item.layers):
            plain = instance
        items = item.layers
    group = plain or name
    return Place(group, group, None)


def _has_blocks(spec: Spec, items: list[Item]) -> bool:
    return any(
        it.block is not None or (it.layers is not None and _has_blocks(spec, it.layers))
        for it in items
    )


def stages(graph: nx.DiGraph) -> dict[str, str]:
    """Node name -> its stage (`layer3`; the node's own name when it stands alone)."""
    return {n: p.stage for n, p in places(graph).items()}


@dataclass
class Group:
    """Nodes drawn or counted as one box: `members` are the block instances merged into it."""

    name: str
    nodes: list[str]
    members: list[str]
    block: str | None = None

    @property
    def repeat(self) -> int:
        return len(self.members)


def collapse(graph: nx.DiGraph, level: str) -> list[Group]:
    """Groups in graph order: `none` one per node; `stage` one per stage; `block` one per run of
    identical consecutive instances of a stage (`layer3.1` to `layer3.5` become `layer3.1-5`,
    five instances whose nodes have the same names and ops)."""
    if level not in ("none", "block", "stage"):
        raise ValueError(f"collapse must be none, block or stage (got {level!r})")
    where = places(graph)
    if level == "none":
        return [Group(n, [n], [n]) for n in where]
    groups: dict[str, Group] = {}
    for name, place in where.items():
        key = place.stage if level == "stage" else place.instance
        group = groups.setdefault(key, Group(key, [], [], place.block))
        group.nodes.append(name)
        if place.instance not in group.members:
            group.members.append(place.instance)
    if level == "stage":
        return list(groups.values())
    return _merge_repeats(graph, list(groups.values()), where)


def _signature(graph: nx.DiGraph, group: Group) -> tuple:
    cut = len(group.members[0]) + 1
    first = [n for n in group.nodes if n.startswith(group.members[0] + ".")]
    return tuple((n[cut:], graph.nodes[n]["op"].op) for n in first)


def _merge_repeats(graph: nx.DiGraph, groups: list[Group], where: dict[str, Place]) -> list[Group]:
    merged: list[Group] = []
    for group in groups:
        last = merged[-1] if merged else None
        if (
            last is not None
            and group.block is not None
            and group.name != where[group.nodes[0]].stage  # a repeat of its stage
            and where[group.nodes[0]].stage == where[last.nodes[0]].stage
            and _signature(graph, group) == _signature(graph, last)
        ):
            last.nodes += group.nodes
            last.members += group.members
            last.name = f"{last.members[0]}-{group.name.rsplit('.', 1)[1]}"  # layer3.1-5
            continue
        merged.append(group)
    return merged
