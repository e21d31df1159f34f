"""Commands about scaling, search and export: scale, search, report, export."""

from __future__ import annotations
