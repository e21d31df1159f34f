"""Stages and block instances of a graph, for subtotals and collapsed pictures, read off each
node's Place (recorded while the spec is expanded; see archspec/graph/node.py)."""

from __future__ import annotations

from dataclasses import dataclass

from archspec.graph import ArchGraph


def stages(graph: ArchGraph) -> dict[str, str]:
    """Node name -> its stage (`layer3`; the node's own name when it stands alone)."""
    return {node.name: node.place.stage for node in graph}


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


def collapse(graph: ArchGraph, level: str) -> list[Group]:
    """Groups in graph order: `none` one per node; `stage` one per stage; `block` one per run of
    identical consecutive instances of a stage (`layer3.1` to `layer3.5` become `layer3.1-5`,
    five instances whose nodes have the same names and ops)."""
    if level not in ("none", "block", "stage"):
        raise ValueError(f"collapse must be none, block or stage (got {level!r})")
    if level == "none":
        return [Group(n.name, [n.name], [n.name]) for n in graph]
    groups: dict[str, Group] = {}
    for node in graph:
        place = node.place
        key = place.stage if level == "stage" else place.instance
        group = groups.setdefault(key, Group(key, [], [], place.block))
        group.nodes.append(node.name)
        if place.instance not in group.members:
            group.members.append(place.instance)
    if level == "stage":
        return list(groups.values())
    return _merge_repeats(graph, list(groups.values()))


def _signature(graph: ArchGraph, group: Group) -> tuple:
    cut = len(group.members[0]) + 1
    first = [n for n in group.nodes if graph[n].place.instance == group.members[0]]
    return tuple((n[cut:], graph[n].op.op) for n in first)


def _merge_repeats(graph: ArchGraph, groups: list[Group]) -> list[Group]:
    merged: list[Group] = []
    for group in groups:
        last = merged[-1] if merged else None
        place = graph[group.nodes[0]].place
        if (
            last is not None
            and place.repeat is not None  # a repeat of its stage
            and place.stage == graph[last.nodes[0]].place.stage
            and _signature(graph, group) == _signature(graph, last)
        ):
            last.nodes += group.nodes
            last.members += group.members
            last.name = f"{last.members[0]}-{place.repeat}"  # layer3.1-5
            continue
        merged.append(group)
    return merged
