"""Commands about analysis: lint, graph."""

from __future__ import annotations
