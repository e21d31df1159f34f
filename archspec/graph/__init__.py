"""The architecture as a networkx DAG with static shapes."""

from archspec.graph.build import INPUT, build_graph

__all__ = ["INPUT", "build_graph"]
