"""The architecture as a typed DAG with static shapes: expansion, shape inference, records."""

from archspec.graph.build import build_graph
from archspec.graph.node import INPUT, ArchGraph, Node, Part, Place

__all__ = ["INPUT", "ArchGraph", "Node", "Part", "Place", "build_graph"]
