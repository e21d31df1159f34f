"""Stages and block instances read off dotted node names, for subtotals and collapsed pictures.

A stage is the shortest dotted prefix of a node's name that does not hold most of the network:
`layer3` in resnet50, but `features.3` in torchvision-style specs where `features` holds nearly
everything. A block instance is one level below its stage (`layer3.2`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import networkx as nx

from archspec.graph import INPUT


def stages(names: list[str]) -> dict[str, str]:
    """Node name -> its stage prefix (the node's own name when it stands alone)."""
    total = len(names)
    counts: Counter[str] = Counter()
    children: dict[str, set[str]] = {}
    for name in names:
        parts = name.split(".")
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth])
            counts[prefix] += 1
            children.setdefault(prefix, set()).add(parts[depth])
    result = {}
    for name in names:
        parts = name.split(".")
        stage = name
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth])
            # descend through a prefix only if it holds most of the network and splits
            if not (counts[prefix] * 2 > total and len(children[prefix]) > 1):
                stage = prefix
                break
        result[name] = stage
    return result


@dataclass
class Group:
    """Nodes drawn or counted as one: `members` are the block instances merged into it (a
    single member, the group's own name, when nothing was merged)."""

    members: list[str]
    nodes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        if len(self.members) == 1:
            return self.members[0]
        return f"{self.members[0]}-{self.members[-1].rsplit('.', 1)[-1]}"  # layer3.1-5

    @property
    def repeat(self) -> int:
        return len(self.members)


def collapse(graph: nx.DiGraph, level: str) -> list[Group]:
    """Groups in graph order: `none` one per node; `stage` one per stage; `block` one per run of
    structurally identical block instances (`layer3.1` to `layer3.5` become one `x5` box)."""
    if level not in ("none", "block", "stage"):
        raise ValueError(f"collapse must be none, block or stage (got {level!r})")
    names = [n for n in graph.graph["order"] if n != INPUT]
    if level == "none":
        return [Group([n], [n]) for n in names]
    stage_of = stages(names)
    groups: dict[str, Group] = {}
    for name in names:
        stage = stage_of[name]
        key = stage if level == "stage" or stage == name else _instance(name, stage)
        groups.setdefault(key, Group([key])).nodes.append(name)
    ordered = list(groups.values())
    return ordered if level == "stage" else _merge_repeats(graph, ordered)


def _instance(name: str, stage: str) -> str:
    rest = name[len(stage) + 1 :].split(".")
    return f"{stage}.{rest[0]}" if len(rest) > 1 else name


def _signature(graph: nx.DiGraph, member: str, nodes: list[str]) -> tuple:
    inside = [n for n in nodes if n.startswith(member + ".")]
    return tuple((n[len(member) + 1 :], graph.nodes[n]["op"].op) for n in inside)


def _merge_repeats(graph: nx.DiGraph, groups: list[Group]) -> list[Group]:
    """Join consecutive instances of one stage whose nodes have the same names and ops."""
    merged: list[Group] = []
    for group in groups:
        last = merged[-1] if merged else None
        member = group.members[0]
        if (
            last is not None
            and len(group.nodes) > 1
            and member.rsplit(".", 1)[0] == last.members[0].rsplit(".", 1)[0]
            and _signature(graph, member, group.nodes)
            == _signature(graph, last.members[0], last.nodes)
        ):
            last.members.append(member)
            last.nodes += group.nodes
            continue
        merged.append(group)
    return merged


def block_name(graph: nx.DiGraph, nodes: list[str]) -> str | None:
    """The block most of these nodes were expanded from (`bottleneck`), if any."""
    found = Counter(
        graph.nodes[n]["path"][1]
        for n in nodes
        if graph.nodes[n].get("path", ())[:1] == ("blocks",)
    )
    return found.most_common(1)[0][0] if found else None
