"""Static analysis of architecture graphs: costs, receptive fields and pitfalls."""

from archspec.analysis.cost import CostReport, NodeCost, ReceptiveField, analyze

__all__ = ["CostReport", "NodeCost", "ReceptiveField", "analyze"]
