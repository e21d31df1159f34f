"""`archspec summary`: the per-node table with stage subtotals, as rich text, markdown or JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from archspec.analysis.cost import CostReport, NodeCost, analyze
from archspec.analysis.groups import stages
from archspec.errors import ArchspecError
from archspec.graph import build_graph
from archspec.graph.features import FeatureInfo, feature_info

FORMATS = ("table", "json", "markdown")
HEADER = ["node", "op", "output shape", "params", "MFLOPs", "act. KiB", "RF"]


@dataclass
class Stage:
    """Consecutive nodes sharing a stage prefix (`layer3`), with their summed figures."""

    name: str
    nodes: list[str]
    params: int
    macs: int
    activation_bytes: int
    output: NodeCost  # the stage's last node

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "nodes": len(self.nodes),
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "activation_bytes": self.activation_bytes,
            "shape": list(self.output.shape.dims),
            "receptive_field": vars(self.output.receptive_field),
        }


def stage_runs(report: CostReport, stage_of: dict[str, str]) -> list[Stage]:
    """The report's nodes cut into runs of one stage each (`stage_of` from groups.stages)."""
    runs: list[Stage] = []
    for name, cost in report.nodes.items():
        if not runs or runs[-1].name != stage_of[name]:
            runs.append(Stage(stage_of[name], [], 0, 0, 0, cost))
        run = runs[-1]
        run.nodes.append(name)
        run.params += cost.params
        run.macs += cost.macs
        run.activation_bytes += cost.activation_bytes
        run.output = cost
    return runs


def _report(
    spec: str, scale: str | None, batch: int, outputs: list[str] | None
) -> tuple[str, CostReport, list[Stage], FeatureInfo]:
    from archspec.spec import load_spec
    from archspec.zoo import spec_path

    loaded = load_spec(spec_path(spec))
    if scale is not None:
        from archspec.scaling.rewrite import apply_preset

        loaded = apply_preset(loaded, scale)
    graph = build_graph(loaded, outputs=outputs)
    report = analyze(graph, batch=batch)
    return loaded.name, report, stage_runs(report, stages(graph)), feature_info(graph)


def _rf(cost: NodeCost) -> str:
    """One size for a square field, height x width otherwise."""
    height, width = (rf.size for rf in cost.receptive_fields)
    if height == width:
        return "all" if height == float("inf") else f"{height:g}"
    return f"{height:g}x{width:g}"


def _row(name: str, op: str, cost: NodeCost | Stage, shape: NodeCost) -> list[str]:
    return [
        name,
        op,
        str(shape.shape),
        f"{cost.params:,}",
        f"{cost.flops / 1e6:.2f}",
        f"{cost.activation_bytes / 1024:.0f}",
        _rf(shape),
    ]


def summary_rows(
    report: CostReport, runs: list[Stage], *, stages_only: bool = False
) -> list[tuple[str, list[str]]]:
    """(kind, cells) rows: kind is `node`, `stage` (a subtotal) or `total`."""
    rows: list[tuple[str, list[str]]] = []
    for stage in runs:
        single = len(stage.nodes) == 1
        if not stages_only or single:
            for name in stage.nodes:
                cost = report.nodes[name]
                rows.append(("node", _row(name, cost.op, cost, cost)))
        if not single:
            label = f"{len(stage.nodes)} nodes"
            rows.append(("stage", _row(f"{stage.name} total", label, stage, stage.output)))
    shapes = " ".join(str(shape) for shape in report.output_shapes)
    total = ["total", "", shapes, f"{report.params:,}", f"{report.flops / 1e6:.2f}"]
    rows.append(("total", [*total, f"{report.activation_bytes / 1024:.0f}", ""]))
    return rows


def render_summary(
    spec: str,
    *,
    scale: str | None = None,
    fmt: str = "table",
    batch: int = 1,
    stages_only: bool = False,
    outputs: list[str] | None = None,
    console: Console | None = None,
) -> str | None:
    """The summary as text (json, markdown) or printed on `console` (table, returns None).
    `outputs` names the layers to summarize up to (a backbone); the rest is left out."""
    if fmt not in FORMATS:
        raise ArchspecError(f"--format must be table, json or markdown (got {fmt!r})")
    name, report, runs, info = _report(spec, scale, batch, outputs)
    if fmt == "json":
        data = {"name": name, **report.to_dict()}
        data["stages"] = [s.to_dict() for s in runs]
        data["outputs"] = [
            {
                "name": f.name,
                "node": f.node,
                "shape": list(f.shape.dims),
                "channels": f.channels,
                "reduction": f.reduction,
            }
            for f in info
        ]
        return json.dumps(data, indent=2) + "\n"
    rows = summary_rows(report, runs, stages_only=stages_only)
    if fmt == "markdown":
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        for kind, cells in rows:
            if kind != "node":
                cells = [f"**{c}**" if c else c for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
    table = Table(*HEADER, title=f"{name}  input {report.input_shape}", show_footer=False)
    for kind, cells in rows:
        if kind == "total":
            table.add_section()
        table.add_row(*cells, style={"node": None, "stage": "bold cyan", "total": "bold"}[kind])
        if kind == "stage":
            table.add_section()
    (console or Console(markup=False)).print(table)
    return None
