"""Static analysis of architecture graphs: costs, receptive fields, pitfalls and pictures."""

from archspec.analysis.cost import CostReport, NodeCost, ReceptiveField, analyze
from archspec.analysis.draw import draw
from archspec.analysis.lint import Finding, lint

__all__ = ["CostReport", "Finding", "NodeCost", "ReceptiveField", "analyze", "draw", "lint"]
