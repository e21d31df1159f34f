"""Backbones: a graph's intermediate outputs as named features, each with its channels and
reduction (timm's `feature_info`), and the default feature maps of `features_only` models,
all read off the static shapes (no forward pass)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from archspec.errors import GraphError
from archspec.graph.node import INPUT, ArchGraph
from archspec.graph.receptive import receptive_fields
from archspec.shape import Shape


@dataclass(frozen=True)
class Feature:
    """One output of a backbone: the name it is returned under, the node holding it, the
    outermost layer whose output it is (`module`, as timm names it), its channels and its
    reduction (the cumulative stride from the input, e.g. 8 for a 28x28 map of a 224 image)."""

    name: str
    node: str
    module: str
    channels: int
    reduction: int
    shape: Shape


class FeatureInfo(tuple[Feature, ...]):
    """The features a backbone returns, in order; timm's accessors."""

    def channels(self, idx: int | None = None) -> int | list[int]:
        return self[idx].channels if idx is not None else [f.channels for f in self]

    def reduction(self, idx: int | None = None) -> int | list[int]:
        return self[idx].reduction if idx is not None else [f.reduction for f in self]

    def module_name(self, idx: int | None = None) -> str | list[str]:
        return self[idx].module if idx is not None else [f.module for f in self]

    def get_dicts(self) -> list[dict[str, Any]]:
        return [{"num_chs": f.channels, "reduction": f.reduction, "module": f.module} for f in self]


def feature_info(graph: ArchGraph) -> FeatureInfo:
    """The graph's outputs as features."""
    reductions = _reductions(graph)
    modules = _modules(graph)
    return FeatureInfo(
        Feature(
            name=name,
            node=node,
            module=modules.get(node, node),
            channels=graph.shape(node).channels,
            reduction=reductions[node],
            shape=graph.shape(node),
        )
        for name, node in zip(graph.output_names, graph.outputs, strict=True)
    )


def feature_maps(graph: ArchGraph) -> list[str]:
    """timm's `features_only` feature maps: one per reduction (cumulative stride), the last
    image tensor at it that every path from input to output passes through (a stage boundary,
    not a branch), preferring the output of a whole stage, and none from the first global
    pooling on (the head). Named by the outermost layer whose output they are (`layer2`,
    `features.3`); in graph order."""
    main = graph.with_outputs([_name_of(graph, graph.outputs[0])]) if graph.outputs else graph
    reductions = _reductions(main)
    modules = _modules(main)
    stage_ends = {n.place.stage: n.name for n in main}  # the last node of each stage
    best: dict[int, tuple[bool, str]] = {}
    for name in _cuts(main):
        if name == INPUT:
            continue
        node = main[name]
        if any(w.whole for w in node.op.windows(list(node.input_shapes))):
            break  # global pooling or attention: the head (or a transformer) starts here
        if node.shape.layout not in ("CHW", "HWC"):
            continue
        stage_end = stage_ends[node.place.stage] == name
        r = reductions[name]
        if r not in best or stage_end or not best[r][0]:
            best[r] = (stage_end, name)
    chosen = sorted((node for _, node in best.values()), key=list(main.nodes).index)
    return [modules.get(node, node) for node in chosen]


def features_graph(graph: ArchGraph, out_indices: Sequence[int] | None = None) -> ArchGraph:
    """The graph returning its feature maps (`out_indices` picks some, negative from the end)."""
    maps = feature_maps(graph)
    if not maps:
        raise GraphError(
            f"{graph.spec.name} has no image feature maps to return (features_only); "
            "name the outputs instead",
            graph.spec.locate(()),
        )
    if out_indices is not None:
        picked = []
        for i in out_indices:
            if not isinstance(i, int) or not -len(maps) <= i < len(maps):
                raise GraphError(
                    f"out_indices: {i!r} is out of range; {graph.spec.name} has "
                    f"{len(maps)} feature maps ({', '.join(maps)})"
                )
            picked.append(maps[i])
        maps = picked
    return graph.with_outputs(maps)


def _name_of(graph: ArchGraph, node: str) -> str:
    return next(p.name for p in graph.parts.values() if p.output == node)


def _modules(graph: ArchGraph) -> dict[str, str]:
    """Node -> the outermost (shortest) layer name whose output it is."""
    modules: dict[str, str] = {}
    for part in graph.parts.values():
        known = modules.get(part.output)
        if known is None or part.name.count(".") < known.count("."):
            modules[part.output] = part.name
    return modules


def _reductions(graph: ArchGraph) -> dict[str, int]:
    """Node -> its cumulative stride along the axis where its receptive field is larger (as
    the cost report's `receptive_field`)."""
    reductions = {INPUT: 1}
    for name, (height, width) in receptive_fields(graph).items():
        if name != INPUT:
            jump = (width if width.size > height.size else height).jump
            reductions[name] = max(1, round(jump))
    return reductions


def _cuts(graph: ArchGraph) -> list[str]:
    """Nodes every path from the input to the outputs passes through: no edge jumps over them
    in graph order."""
    position = {INPUT: -1, **{name: i for i, name in enumerate(graph.nodes)}}
    reach = -1  # the furthest node an edge from an earlier node lands on
    cuts = []
    for name, i in position.items():
        if reach <= i:
            cuts.append(name)
        reach = max([reach] + [position[u] for u in graph.users(name)])
    return cuts
