"""Costs read off the graph alone: params, MACs/FLOPs, activation memory, receptive fields.

FLOP convention, that of torch.utils.flop_counter.FlopCounterMode: one multiply-add is 2 FLOPs
(`flops = 2 * macs`), per sample, forward pass only. Counted: convolutions (patch embeddings and
squeeze-excitation's 1x1 convolutions included), linear layers and matmuls, and attention (the
q/k/v/output projections, 4*L*C^2 MACs, plus scores and weighted sum, 2*L^2*C). Not counted,
as FlopCounterMode does not count them: biases, normalization, activations, pooling (global
included), softmax, dropout and elementwise merges (add, mul, layer scale). The zoo agrees
with FlopCounterMode exactly (tests/analysis/test_cost.py).

Activation memory is the size of every node's output at `batch` x `dtype_bytes`, summed: what a
training step keeps for backward, ignoring in-place ops and what the allocator reuses.

Receptive fields are archspec.graph.receptive's, kept per node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archspec.graph import INPUT, ArchGraph, build_graph
from archspec.graph.receptive import ReceptiveField, receptive_fields
from archspec.shape import Shape
from archspec.spec.model import Spec


@dataclass(frozen=True)
class NodeCost:
    op: str
    shape: Shape
    params: int
    macs: int
    activation_bytes: int
    receptive_fields: tuple[ReceptiveField, ReceptiveField]  # (height, width)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def receptive_field(self) -> ReceptiveField:
        """The field along the axis where it is larger (both agree for square windows)."""
        height, width = self.receptive_fields
        return width if width.size > height.size else height


@dataclass
class CostReport:
    """Totals and per-node figures for one graph, at `batch` samples of `dtype_bytes` each."""

    nodes: dict[str, NodeCost] = field(default_factory=dict)
    batch: int = 1
    dtype_bytes: int = 4
    input_shape: Shape | None = None
    outputs: list[str] = field(default_factory=list)

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes.values())

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes.values())

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def activation_bytes(self) -> int:
        return sum(n.activation_bytes for n in self.nodes.values())

    @property
    def receptive_field(self) -> ReceptiveField:
        first = self.outputs[0]
        return ReceptiveField() if first == INPUT else self.nodes[first].receptive_field

    @property
    def output_shapes(self) -> list[Shape]:
        """The shape of each output; an output may be the input itself (`outputs: [input]`,
        or every layer removed by `when`)."""
        return [
            self.input_shape if name == INPUT else self.nodes[name].shape  # type: ignore[misc]
            for name in self.outputs
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "activation_bytes": self.activation_bytes,
            "batch": self.batch,
            "nodes": {
                name: {
                    "op": n.op,
                    "shape": list(n.shape.dims),
                    "layout": n.shape.layout,
                    "params": n.params,
                    "macs": n.macs,
                    "flops": n.flops,
                    "activation_bytes": n.activation_bytes,
                    "receptive_field": vars(n.receptive_field),
                    "receptive_fields": [vars(rf) for rf in n.receptive_fields],
                }
                for name, n in self.nodes.items()
            },
        }


def analyze(
    source: Spec | str | Path | ArchGraph, *, batch: int = 1, dtype_bytes: int = 4, **options: Any
) -> CostReport:
    """Cost report of a spec or of an already built graph; no weights, no tensors."""
    graph = source if isinstance(source, ArchGraph) else build_graph(source, **options)
    report = CostReport(
        batch=batch,
        dtype_bytes=dtype_bytes,
        input_shape=graph.input_shape,
        outputs=list(graph.outputs),
    )
    fields = receptive_fields(graph)
    for node in graph:
        op, shape, shapes = node.op, node.shape, list(node.input_shapes)
        rf = fields[node.name]
        report.nodes[node.name] = NodeCost(
            op=op.op,
            shape=shape,
            params=op.count_params(shapes),
            macs=op.macs(shapes, shape),
            activation_bytes=shape.numel * batch * dtype_bytes,
            receptive_fields=rf,
        )
    return report
