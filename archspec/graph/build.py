"""build_graph: a Spec expanded (expand.py), its references resolved and checked for cycles and
dangling layers, its shapes inferred (infer.py), frozen into an ArchGraph of Node records.
Nothing here touches a tensor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import networkx as nx

from archspec.errors import GraphError, Problem
from archspec.graph.expand import Expander, Ref, Scope
from archspec.graph.infer import ShapeInference
from archspec.graph.node import INPUT, ArchGraph, Node, Part, feeding
from archspec.ops import get_op
from archspec.ops.split import Parts
from archspec.shape import Shape
from archspec.spec.limits import check_nodes, check_size
from archspec.spec.load import load_spec
from archspec.spec.model import Spec


def build_graph(
    spec: Spec | str, *, outputs: Iterable[str] | None = None, **options: Any
) -> ArchGraph:
    """The validated, shape-annotated graph of a spec; raises GraphError listing every problem.
    `outputs` names the layers to return instead of the spec's own (`["layer2", "layer4"]`,
    any dotted item or node name); what does not feed them is left out."""
    spec = load_spec(spec)
    check_nodes(spec, options)  # before anything is expanded
    expander = Expander(spec, options)
    h, w = spec.input.hw
    shapes = ShapeInference(expander, Shape.image(spec.input.channels, h, w))
    top, last = expander.run()
    inputs = _connect(expander)
    names, outs = _outputs(expander, top, last)
    _raise(expander.problems)
    digraph = nx.DiGraph()
    digraph.add_nodes_from([INPUT, *inputs])  # one call each: networkx's per-call cost is high
    digraph.add_edges_from([(s, name) for name, sources in inputs.items() for s in sources])
    order = _order(expander, digraph)
    shapes.infer_all(order, inputs)
    _raise(expander.problems)
    _check_size(shapes, order)
    final = expander.resolve(last, report=False)
    keep = _check_reach(expander, digraph, order, outs, final)
    locate = spec._source.locate if spec._source is not None else spec.locate
    nodes = {
        name: Node(
            name=name,
            op=shapes.ops[name],
            inputs=tuple(inputs[name]),
            input_shapes=tuple(shapes.shapes[i] for i in inputs[name]),  # type: ignore[misc]
            shape=shapes.shapes[name],  # type: ignore[arg-type]
            location=locate(expander.nodes[name].path),
            path=expander.nodes[name].path,
            place=expander.nodes[name].place,
        )
        for name in order
        if name != INPUT and name in keep
    }
    parts = {
        name: Part(name, kind, path, out)
        for name, (kind, path, out) in expander.parts_resolved().items()
        if out in keep
    }
    digraph.remove_nodes_from([n for n in list(digraph) if n not in keep])
    graph = ArchGraph(spec, shapes.shapes[INPUT], nodes, tuple(outs), tuple(names), parts, digraph)  # type: ignore[arg-type]
    return graph if outputs is None else graph.with_outputs(outputs)


def _check_size(shapes: ShapeInference, order: list[str]) -> None:
    """The parameters and activation memory of the whole graph, within the budget."""
    params = activations = 0
    largest, most = INPUT, -1
    for name in order:
        shape = shapes.shapes[name]
        assert shape is not None
        size = shape.numel
        if name != INPUT:
            op = shapes.ops[name]
            size += op.count_params([shapes.shapes[i] for i in shapes.inputs[name]])  # type: ignore[misc]
            params += size - shape.numel
        activations += shape.numel
        if size > most:
            largest, most = name, size
    where = shapes.spec.locate(shapes.expander.nodes[largest].path) if largest != INPUT else None
    check_size(params, activations, (largest, where or shapes.spec.locate(("input",))))


def _connect(b: Expander) -> dict[str, list[str]]:
    """Every node's inputs resolved to node names (unresolvable ones reported)."""
    inputs: dict[str, list[str]] = {}
    done = 0
    while done < len(b.nodes):  # resolving `split.1` adds the node reading that part
        for name, pending in list(b.nodes.items())[done:]:
            resolved = [b.resolve(r) for r in pending.inputs]
            inputs[name] = [i for i in resolved if i is not None]
            done += 1
    _check_parts_read(b, inputs)
    return inputs


def _check_parts_read(b: Expander, inputs: dict[str, list[str]]) -> None:
    """A split or chunk is read by its parts (`halves.0`), never whole."""
    for name, sources in inputs.items():
        if b.nodes[name].part is not None:
            continue
        for source in sources:
            split = b.nodes.get(source)
            if (
                split is not None
                and split.part is None
                and issubclass(get_op(split.item.op or ""), Parts)
            ):
                local = source.rsplit(".", 1)[-1]
                how = f"as {local}.0, {local}.1, ..." if not local.isdigit() else "by name.i"
                b.fail(
                    b.nodes[name].path,
                    f"node {name} reads the {split.item.op} {source} whole; read its parts {how}",
                )


def _order(b: Expander, g: nx.DiGraph) -> list[str]:
    rank = {name: i for i, name in enumerate(b.nodes, start=1)}
    rank[INPUT] = 0
    try:
        # Expansion order is the sort's answer unless a `from:` names a later item.
        if all(rank.get(u, -1) < rank.get(v, -1) for u, v in g.edges):
            return sorted(g.nodes, key=lambda n: rank.get(n, -1))
        return list(nx.lexicographical_topological_sort(g, key=lambda n: rank.get(n, -1)))
    except nx.NetworkXUnfeasible:
        cycle = [u for u, _ in nx.find_cycle(g)]
        first = b.nodes[cycle[0]]
        raise GraphError(
            f"node {cycle[0]}: cycle {' -> '.join(cycle + [cycle[0]])}",
            b.spec.locate(first.path),
        ) from None


def _outputs(b: Expander, top: Scope, last: str | Ref) -> tuple[list[str], list[str]]:
    """The spec's outputs: (names as written, nodes)."""
    if b.spec.outputs is None:
        resolved = b.resolve(last)
        return ([resolved], [resolved]) if resolved else ([], [])
    names, nodes = [], []
    for i, name in enumerate(b.spec.outputs):
        if name in top.skipped:
            continue  # a head switched off by `when` (e.g. googlenet's aux_logits) is no output
        resolved = b.resolve(Ref(top, name, ("outputs", i)))
        if resolved:
            names.append(name)
            nodes.append(resolved)
    return names, nodes


def _check_reach(
    b: Expander, g: nx.DiGraph, order: list[str], outputs: list[str], last: str | None
) -> set[str]:
    """The nodes feeding the outputs. A node feeding neither an output nor the last layer is a
    mistake ("never used"); one feeding only the last layer is a head left out because the
    outputs are earlier layers (a backbone)."""
    keep = feeding(g, outputs)
    reached = keep if last is None or last in keep else keep | feeding(g, [last])
    for name in order:
        if name not in reached:
            b.fail(
                b.nodes[name].path if name in b.nodes else ("input",),
                f"node {name}: its output is never used (it does not reach the model output)",
            )
    if INPUT not in keep:
        b.fail(("input",), "the model output does not depend on the input")
    _raise(b.problems)
    return keep


def _raise(problems: list[Problem]) -> None:
    if problems:
        raise GraphError(_fold(problems))


def _fold(problems: list[Problem]) -> list[Problem]:
    """One problem per place and message: the same mistake in every instance of a block is
    printed once, with the number of instances."""
    counts: dict[Problem, int] = {}
    for problem in problems:
        counts[problem] = counts.get(problem, 0) + 1
    return [
        p if n == 1 else Problem(p.location, f"{p.message} (in {n} instances)")
        for p, n in counts.items()
    ]
