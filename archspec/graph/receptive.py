"""Receptive fields read off the graph, from each op's windows (no tensors, no cost analysis):
per node and spatial axis, the input pixels one output unit sees (`size`), the input pixels
between neighbouring units (`jump`, the cumulative stride: a feature map's reduction) and the
centre of the first unit's field (`start`, in input pixels whose centres are at k + 0.5).

The usual recurrence, along height and width separately:
size += (dilation*(kernel-1)) * jump; start += ((span-1)/2 - padding) * jump; jump *= stride.
A merge sees the union of its branches' fields; global pooling and attention see everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archspec.graph.node import INPUT, ArchGraph
from archspec.shape import Shape


@dataclass(frozen=True)
class ReceptiveField:
    """Per spatial axis: `size` input pixels seen by one unit, `jump` input pixels between
    neighbouring units (cumulative stride), `start` centre of the first unit's field."""

    size: float = 1
    jump: float = 1
    start: float = 0.5


def receptive_fields(graph: ArchGraph) -> dict[str, tuple[ReceptiveField, ReceptiveField]]:
    """(height, width) fields of every node, and of the input."""
    fields: dict[str, tuple[ReceptiveField, ReceptiveField]] = {
        INPUT: (ReceptiveField(), ReceptiveField())
    }
    for node in graph:
        shapes = list(node.input_shapes)
        fields[node.name] = tuple(  # type: ignore[assignment]
            _receptive_field(window, _local(node, fields, node.shape, axis), shapes[0], axis)
            for axis, window in enumerate(node.op.windows(shapes))
        )
    return fields


def _local(
    node: Any, fields: dict[str, tuple[ReceptiveField, ReceptiveField]], shape: Shape, axis: int
) -> list[ReceptiveField]:
    """The fields a node's output units build on along `axis`. A merge leaves out inputs it
    broadcasts along that axis (size 1 against a larger output): a hand-written
    squeeze-excite gate (pool, conv, sigmoid, mul) is a summary of the whole input that
    scales each unit, left out as the built-in `squeeze_excitation` leaves it out; its
    cumulative stride is not the output's."""
    inputs = [fields[i][axis] for i in node.inputs]
    if len(inputs) < 2 or shape.layout not in ("CHW", "HWC"):
        return inputs
    extent = shape.spatial[axis]
    kept = [
        rf
        for rf, s in zip(inputs, node.input_shapes, strict=True)
        if not (s.layout in ("CHW", "HWC") and s.spatial[axis] == 1 < extent)
    ]
    return kept or inputs


def _union(fields: list[ReceptiveField]) -> ReceptiveField:
    """A merge sees the union of its branches' fields (the largest one when they are centred
    alike, as in Araujo et al., 2019)."""
    if len(fields) == 1:
        return fields[0]
    jump = max(f.jump for f in fields)
    if any(f.size == float("inf") for f in fields):
        return ReceptiveField(float("inf"), jump, fields[0].start)
    low = min(f.start - f.size / 2 for f in fields)
    high = max(f.start + f.size / 2 for f in fields)
    return ReceptiveField(high - low, jump, (low + high) / 2)


def _receptive_field(
    window: Any, inputs: list[ReceptiveField], shape: Shape, axis: int
) -> ReceptiveField:
    rf = _union(inputs)
    if window.whole:
        extent = shape.spatial[axis] if shape.layout in ("CHW", "HWC") else None
        if extent is None:  # tokens: every output sees the whole input image
            return ReceptiveField(float("inf"), rf.jump, rf.start)
        return ReceptiveField(
            rf.size + (extent - 1) * rf.jump,
            rf.jump * extent,
            rf.start + (extent - 1) / 2 * rf.jump,
        )
    span = window.dilation * (window.kernel - 1) + 1
    return ReceptiveField(
        size=rf.size + (span - 1) * rf.jump,
        jump=rf.jump * window.stride,
        start=rf.start + ((span - 1) / 2 - window.padding) * rf.jump,
    )
