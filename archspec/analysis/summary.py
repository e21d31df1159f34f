"""`archspec summary`: the per-node table as rich text, markdown or JSON."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from archspec.analysis.cost import CostReport, analyze
from archspec.errors import ArchspecError


def _report(spec: str, scale: str | None, batch: int) -> tuple[str, CostReport]:
    from archspec.spec import load_spec
    from archspec.zoo import spec_path

    loaded = load_spec(spec_path(spec))
    options: dict = {}
    if scale is not None:
        from archspec.scale import apply_preset

        loaded, options = apply_preset(loaded, scale)
    return loaded.name, analyze(loaded, batch=batch, **options)


def _rf(size: float) -> str:
    return "all" if size == float("inf") else f"{size:g}"


def render_summary(
    spec: str,
    *,
    scale: str | None = None,
    fmt: str = "table",
    batch: int = 1,
    console: Console | None = None,
) -> str | None:
    if fmt not in ("table", "json", "markdown"):
        raise ArchspecError(f"--format must be table, json or markdown (got {fmt!r})")
    name, report = _report(spec, scale, batch)
    if fmt == "json":
        return json.dumps({"name": name, **report.to_dict()}, indent=2) + "\n"
    header = ["node", "op", "output shape", "params", "MFLOPs", "act. KiB", "RF"]
    rows = [
        [
            node,
            c.op,
            str(c.shape),
            f"{c.params:,}",
            f"{c.flops / 1e6:.2f}",
            f"{c.activation_bytes / 1024:.0f}",
            _rf(c.receptive_field.size),
        ]
        for node, c in report.nodes.items()
    ]
    total = [
        "total",
        "",
        str(report.nodes[report.outputs[0]].shape),
        f"{report.params:,}",
        f"{report.flops / 1e6:.2f}",
        f"{report.activation_bytes / 1024:.0f}",
        "",
    ]
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in [*rows, total]]
        return "\n".join(lines) + "\n"
    table = Table(*header, title=f"{name}  input {report.input_shape}", show_footer=False)
    for r in rows:
        table.add_row(*r)
    table.add_section()
    table.add_row(*total, style="bold")
    (console or Console()).print(table)
    return None
