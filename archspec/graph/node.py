"""The graph contract between stages: one frozen record per op node (as torch.fx's `Node`), one
per expanded spec item, and the graph holding them (networkx kept inside, for graph algorithms).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import networkx as nx

from archspec.errors import GraphError, Location
from archspec.shape import Shape
from archspec.spec.yamlsource import PathKey

if TYPE_CHECKING:
    from archspec.ops.base import Op
    from archspec.spec.model import Spec

INPUT = "input"


@dataclass(frozen=True)
class Place:
    """Where a node sits in the spec's structure, recorded while it is expanded.

    - inside a `block:` item (the outermost one): `stage` is that item's dotted name (`layer3`,
      `features.3`), `instance` the block instance (`layer3.2`; the stage itself when it does
      not repeat), `block` the block's name, `repeat` the instance's repeat index (None when
      the item has no `repeat:`);
    - outside every block: stage and instance are the outermost group around the node that
      holds no blocks (efficientnet's stem `features.0`, vgg's `classifier`), else the node's
      own name; block and repeat are None.
    """

    stage: str
    instance: str
    block: str | None = None
    repeat: int | None = None


@dataclass(frozen=True)
class Node:
    """One op node: its dotted `name` (the module and state_dict name), the validated op, the
    nodes it reads and their shapes, its output shape, where it is written, and its place."""

    name: str
    op: Op
    inputs: tuple[str, ...]
    input_shapes: tuple[Shape, ...]
    shape: Shape
    location: Location
    path: PathKey  # the op item's place in the spec data: ("blocks", "basic", "layers", 0)
    place: Place


PartKind = Literal["op", "block", "group"]


@dataclass(frozen=True)
class Part:
    """One expanded spec item (an op, a block stage or instance, a group or one of its repeats):
    its dotted name (`layer3`, `layer3.2`, `layer3.2.conv1`), the spec path it is written at,
    and the node holding its output (what `outputs=["layer3"]` returns)."""

    name: str
    kind: PartKind
    path: PathKey
    output: str


class ArchGraph:
    """The validated, shape-annotated DAG of a spec. Iterating gives the op nodes in graph
    order (a topological order that follows the spec where it can); `graph[name]` one node."""

    def __init__(
        self,
        spec: Spec,
        input_shape: Shape,
        nodes: Mapping[str, Node],
        outputs: tuple[str, ...],
        output_names: tuple[str, ...],
        parts: Mapping[str, Part],
        digraph: nx.DiGraph | None = None,
    ):
        self.spec = spec
        self.input_shape = input_shape
        self.nodes: Mapping[str, Node] = dict(nodes)
        self.outputs = outputs  # node names, in the order the model returns them
        self.output_names = output_names  # the names they were asked by (`layer3`, `fc`)
        self.parts: Mapping[str, Part] = dict(parts)
        self.digraph = _digraph(input_shape, self.nodes, spec, digraph)
        self._users: dict[str, list[str]] = {INPUT: []}
        for node in self.nodes.values():
            self._users[node.name] = []
            for source in dict.fromkeys(node.inputs):
                self._users[source].append(node.name)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def shape(self, name: str) -> Shape:
        """Output shape of a node, or the input's for INPUT."""
        return self.input_shape if name == INPUT else self.nodes[name].shape

    def users(self, name: str) -> list[str]:
        """The nodes reading `name` (INPUT included), in graph order."""
        return self._users[name]

    def with_outputs(self, names: Iterable[str]) -> ArchGraph:
        """The graph returning the named parts (`layer2`, `features.3`, any node), without the
        nodes that do not feed them (the classifier head of a backbone)."""
        names = list(names)
        if not names:
            raise GraphError("outputs: give at least one name", self.spec.locate(()))
        outputs = []
        for name in names:
            part = self.parts.get(name)
            if part is None:
                raise GraphError(
                    f"outputs: {_unknown_layer(name, self.parts)}", self.spec.locate(())
                )
            outputs.append(part.output)
        keep = feeding(self.digraph, outputs)
        if INPUT not in keep:
            raise GraphError(f"outputs: {names[0]} does not depend on the input")
        nodes = {n: node for n, node in self.nodes.items() if n in keep}
        parts = {n: p for n, p in self.parts.items() if p.output in keep or p.output == INPUT}
        digraph = self.digraph.subgraph(keep).copy()
        return ArchGraph(
            self.spec, self.input_shape, nodes, tuple(outputs), tuple(names), parts, digraph
        )

    def __repr__(self) -> str:
        return f"<ArchGraph {self.spec.name}: {len(self)} nodes, outputs {list(self.outputs)}>"


def _unknown_layer(name: str, parts: Mapping[str, Part]) -> str:
    near = difflib.get_close_matches(name, list(parts), n=3, cutoff=0.6)
    if near:
        return f"unknown layer {name!r}; did you mean {', '.join(near)}?"
    top = [p for p in parts if "." not in p][:12]
    return f"unknown layer {name!r}; layers are named by their dotted path ({', '.join(top)}, ...)"


def feeding(digraph: nx.DiGraph, outputs: Iterable[str]) -> set[str]:
    """The outputs and every node they depend on."""
    keep: set[str] = set()
    for out in outputs:
        if out not in keep:
            keep |= nx.ancestors(digraph, out) | {out}
    return keep


def _digraph(
    input_shape: Shape, nodes: Mapping[str, Node], spec: Spec, g: nx.DiGraph | None
) -> nx.DiGraph:
    """The networkx view (built here unless the builder's is given): node attributes `node`
    (the record), `op`, `shape`, `location`; the input is INPUT with op None."""
    if g is None:
        g = nx.DiGraph()
        g.add_nodes_from([INPUT, *nodes])
        g.add_edges_from([(s, node.name) for node in nodes.values() for s in node.inputs])
    g.graph["name"] = spec.name
    g.nodes[INPUT].update(node=None, op=None, shape=input_shape, location=spec.locate(("input",)))
    for node in nodes.values():
        g.nodes[node.name].update(node=node, op=node.op, shape=node.shape, location=node.location)
    return g
