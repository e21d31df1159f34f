"""Pictures of an architecture: Graphviz DOT, Mermaid, and SVG or PNG.

SVG and PNG use Graphviz's `dot` when it is installed and otherwise a small layered layout of
our own (SVG written directly, PNG through matplotlib), so a picture can always be drawn.
Boxes show the node (or collapsed group), its op (or block and repeat count) and output shape.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from archspec.analysis.groups import Group, collapse
from archspec.errors import ArchspecError
from archspec.graph import INPUT, ArchGraph, Node, build_graph
from archspec.spec.model import Spec

FORMATS = (".dot", ".gv", ".mmd", ".svg", ".png")
COLLAPSE = ("block", "stage", "none")
ENGINES = ("auto", "graphviz", "builtin")

_FILL = {"weights": "#dbe8fb", "merge": "#fde6c8", "group": "#e0f0dc", "other": "#f1f1f1"}


@dataclass
class Box:
    id: str
    title: str
    kind: str
    shape: str
    style: str  # a key of _FILL

    @property
    def lines(self) -> list[str]:
        return [self.title, self.kind, self.shape]


@dataclass
class Picture:
    name: str
    boxes: list[Box]
    edges: list[tuple[str, str]]


def picture(graph: ArchGraph, collapse_level: str = "block") -> Picture:
    """Boxes and edges of the graph with its stages or blocks collapsed as asked."""
    groups = collapse(graph, collapse_level)
    boxes = [Box("n0", "input", "image", str(graph.input_shape), "other")]
    box_of = {INPUT: "n0"}
    for i, group in enumerate(groups, start=1):
        boxes.append(_box(graph, group, f"n{i}"))
        box_of.update({n: f"n{i}" for n in group.nodes})
    edges: dict[tuple[str, str], None] = {}
    for node in graph:
        for source in node.inputs:
            if box_of[source] != box_of[node.name]:
                edges[(box_of[source], box_of[node.name])] = None
    return Picture(graph.spec.name, boxes, list(edges))


def _box(graph: ArchGraph, group: Group, box_id: str) -> Box:
    shape = str(graph[group.nodes[-1]].shape)
    if len(group.nodes) == 1:
        node = graph[group.nodes[0]]
        return Box(box_id, group.name, _describe(node), shape, _style(node))
    kind = group.block or f"{len(group.nodes)} ops"
    if group.repeat > 1:
        kind += f" x{group.repeat}"
    return Box(box_id, group.name, kind, shape, "group")


def _describe(node: Node) -> str:
    """`conv2d 3x3/2`: the op, with its window where it has one."""
    height, width = node.op.windows(list(node.input_shapes))
    text = node.op.op
    if height.whole or width.whole:
        return text
    if max(height.kernel, width.kernel) > 1:
        text += f" {height.kernel}x{width.kernel}"
    if max(height.stride, width.stride) > 1:
        same = height.stride == width.stride
        text += f"/{height.stride}" if same else f"/{height.stride}x{width.stride}"
    return text


def _style(node: Node) -> str:
    if len(node.inputs) > 1:
        return "merge"
    return "weights" if node.op.count_params(list(node.input_shapes)) else "other"


# --- text formats --------------------------------------------------------------------------


def to_dot(pic: Picture) -> str:
    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [
        f"digraph {quote(pic.name)} {{",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
        "  edge [arrowsize=0.6];",
    ]
    for box in pic.boxes:
        label = quote("\n".join(box.lines)).replace("\n", "\\n")
        lines.append(f"  {box.id} [label={label}, fillcolor={quote(_FILL[box.style])}];")
    lines += [f"  {a} -> {b};" for a, b in pic.edges]
    return "\n".join([*lines, "}"]) + "\n"


def to_mermaid(pic: Picture) -> str:
    lines = ["flowchart TD"]
    for box in pic.boxes:
        label = "<br/>".join(line.replace('"', "#quot;") for line in box.lines)
        lines.append(f'  {box.id}["{label}"]')
    lines += [f"  {a} --> {b}" for a, b in pic.edges]
    styles = {s for s in _FILL if any(b.style == s for b in pic.boxes)}
    for style in sorted(styles):
        lines.append(f"  classDef {style} fill:{_FILL[style]},stroke:#555")
        ids = ",".join(b.id for b in pic.boxes if b.style == style)
        lines.append(f"  class {ids} {style}")
    return "\n".join(lines) + "\n"


# --- built-in layout -----------------------------------------------------------------------

_CHAR_W, _LINE_H, _PAD, _GAP_X, _GAP_Y = 6.6, 14, 8, 40, 26


@dataclass
class Layout:
    """Box centres and sizes in pixels, origin top left."""

    pos: dict[str, tuple[float, float]]
    box_w: float
    box_h: float
    width: float
    height: float


def layout(pic: Picture) -> Layout:
    """Rank = longest path from the input; a box takes its first input's column if free at its
    rank, else the next free column to the right: the main path stays one straight column."""
    preds: dict[str, list[str]] = {b.id: [] for b in pic.boxes}
    for a, b in pic.edges:
        preds[b].append(a)
    rank: dict[str, int] = {}
    column: dict[str, int] = {}
    taken: set[tuple[int, int]] = set()
    for box in pic.boxes:  # boxes come in topological order
        rank[box.id] = 1 + max((rank[p] for p in preds[box.id]), default=-1)
        col = column[preds[box.id][0]] if preds[box.id] else 0
        while (rank[box.id], col) in taken:
            col += 1
        column[box.id] = col
        taken.add((rank[box.id], col))
    box_w = max(len(line) for b in pic.boxes for line in b.lines) * _CHAR_W + 2 * _PAD
    box_h = 3 * _LINE_H + 2 * _PAD
    margin = box_w / 2 + _GAP_X  # room on the left for skip edges
    pos = {
        b: (margin + column[b] * (box_w + _GAP_X) + box_w / 2, _GAP_Y + rank[b] * (box_h + _GAP_Y))
        for b in rank
    }
    width = margin + (max(column.values()) + 1) * (box_w + _GAP_X)
    height = (max(rank.values()) + 1) * (box_h + _GAP_Y) + _GAP_Y
    return Layout({k: (x, y + box_h / 2) for k, (x, y) in pos.items()}, box_w, box_h, width, height)


def _edge_path(lay: Layout, a: str, b: str) -> tuple[tuple[float, float], ...]:
    """Bezier control points: straight to the next rank, bowed left around skipped boxes."""
    (x1, y1), (x2, y2) = lay.pos[a], lay.pos[b]
    y1, y2 = y1 + lay.box_h / 2, y2 - lay.box_h / 2
    if y2 - y1 <= _GAP_Y + 1 or x1 != x2:
        return ((x1, y1), (x1, (y1 + y2) / 2), (x2, (y1 + y2) / 2), (x2, y2))
    bow = x1 - lay.box_w / 2 - _GAP_X * 0.8
    return (
        (x1 - lay.box_w / 4, y1),
        (bow, y1 + _GAP_Y),
        (bow, y2 - _GAP_Y),
        (x2 - lay.box_w / 4, y2),
    )


def to_svg(pic: Picture) -> str:
    lay = layout(pic)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width:.0f}" '
        f'height="{lay.height:.0f}" viewBox="0 0 {lay.width:.0f} {lay.height:.0f}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f"<title>{escape(pic.name)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#555"/></marker></defs>',
    ]
    for a, b in pic.edges:
        p = _edge_path(lay, a, b)
        d = f"M{p[0][0]:.1f},{p[0][1]:.1f} C" + " ".join(f"{x:.1f},{y:.1f}" for x, y in p[1:])
        out.append(f'<path d="{d}" fill="none" stroke="#555" marker-end="url(#arrow)"/>')
    for box in pic.boxes:
        x, y = lay.pos[box.id]
        left, top = x - lay.box_w / 2, y - lay.box_h / 2
        out.append(
            f'<g><rect x="{left:.1f}" y="{top:.1f}" width="{lay.box_w:.1f}" '
            f'height="{lay.box_h:.1f}" rx="6" fill="{_FILL[box.style]}" stroke="#555"/>'
        )
        for i, line in enumerate(box.lines):
            weight = ' font-weight="bold"' if i == 0 else ""
            ty = top + _PAD + (i + 0.8) * _LINE_H
            out.append(
                f'<text x="{x:.1f}" y="{ty:.1f}" text-anchor="middle"{weight}>{escape(line)}</text>'
            )
        out.append("</g>")
    return "\n".join([*out, "</svg>"]) + "\n"


def write_png(pic: Picture, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MPath

    lay = layout(pic)
    dpi = 100
    fig = plt.figure(figsize=(lay.width / dpi, lay.height / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, lay.width)
    ax.set_ylim(lay.height, 0)
    ax.axis("off")
    for a, b in pic.edges:
        verts = _edge_path(lay, a, b)
        codes = [MPath.MOVETO, MPath.CURVE4, MPath.CURVE4, MPath.CURVE4]
        ax.add_patch(
            FancyArrowPatch(
                path=MPath(verts, codes),
                arrowstyle="-|>",
                mutation_scale=9,
                color="#555",
                linewidth=0.8,
            )
        )
    for box in pic.boxes:
        x, y = lay.pos[box.id]
        ax.add_patch(
            FancyBboxPatch(
                (x - lay.box_w / 2, y - lay.box_h / 2),
                lay.box_w,
                lay.box_h,
                boxstyle="round,pad=0,rounding_size=6",
                facecolor=_FILL[box.style],
                edgecolor="#555",
                linewidth=0.8,
            )
        )
        for i, line in enumerate(box.lines):
            ax.text(
                x,
                y - lay.box_h / 2 + _PAD + (i + 0.5) * _LINE_H,
                line,
                ha="center",
                va="center",
                fontsize=8,
                fontweight="bold" if i == 0 else "normal",
            )
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


# --- entry point ---------------------------------------------------------------------------


def draw(
    source: Spec | str | Path | ArchGraph,
    output: str | Path,
    *,
    collapse_level: str = "block",
    engine: str = "auto",
    **options: Any,
) -> Path:
    """Write the picture of a spec (or graph) to `output`; the suffix picks the format."""
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ArchspecError(
            f"cannot draw {path.name}: the file name must end in " + ", ".join(FORMATS)
        )
    if collapse_level not in COLLAPSE:
        raise ArchspecError(
            f"--collapse must be one of {', '.join(COLLAPSE)} (got {collapse_level!r})"
        )
    if engine not in ENGINES:
        raise ArchspecError(f"--engine must be one of {', '.join(ENGINES)} (got {engine!r})")
    graph = source if isinstance(source, ArchGraph) else build_graph(source, **options)
    pic = picture(graph, collapse_level)
    if suffix in (".dot", ".gv"):
        path.write_text(to_dot(pic))
    elif suffix == ".mmd":
        path.write_text(to_mermaid(pic))
    elif engine != "builtin" and shutil.which("dot"):
        _graphviz(to_dot(pic), suffix[1:], path)
    elif engine == "graphviz":
        raise ArchspecError("--engine graphviz: the `dot` program is not installed")
    elif suffix == ".svg":
        path.write_text(to_svg(pic))
    else:
        write_png(pic, path)
    return path


def _graphviz(dot: str, fmt: str, path: Path) -> None:
    result = subprocess.run(
        ["dot", f"-T{fmt}", "-o", str(path)], input=dot.encode(), capture_output=True, check=False
    )
    if result.returncode:
        message = result.stderr.decode(errors="replace").strip()
        raise ArchspecError(f"graphviz dot failed: {message}")
