"""`archspec lint`: classic CNN pitfalls read off the graph, as located findings.

Rules live in a small registry: one function per rule, registered with `@rule(code, summary)`.
A rule gets the spec, its graph and its cost report and yields `Hit(node, message)`; `lint()`
locates each hit at the node's place in the spec (`file:line:col`) and folds the hits of one
block line (one per block instance) into one finding. Severity: a `warning` is probably a
mistake; an `info` is a design smell that some famous networks have on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import networkx as nx

from archspec.analysis.cost import CostReport, analyze
from archspec.errors import ArchspecError, GraphError, Location
from archspec.graph import INPUT, ArchGraph, build_graph
from archspec.ops.base import Op, Window
from archspec.shape import Shape
from archspec.spec import load_spec
from archspec.spec.model import Spec

Severity = Literal["warning", "info"]


@dataclass(frozen=True)
class Hit:
    """What a rule found at one node (or at an explicit place, for graphs it built itself)."""

    node: str
    message: str
    location: Location | None = None


@dataclass(frozen=True)
class Finding:
    """One located finding: `file:line:col: CODE message`."""

    code: str
    severity: Severity
    message: str
    location: Location
    nodes: tuple[str, ...]

    def __str__(self) -> str:
        tag = f"{self.code} ({self.severity})" if self.severity != "warning" else self.code
        where = str(self.location)
        return f"{where}: {tag} {self.message}" if where else f"{tag} {self.message}"


@dataclass
class Context:
    """What every rule may read."""

    spec: Spec
    graph: ArchGraph
    report: CostReport
    options: dict[str, Any]

    @property
    def nodes(self) -> list[str]:
        return list(self.graph.nodes)

    def op(self, name: str) -> Op:
        return self.graph[name].op

    def shape(self, name: str) -> Shape:
        return self.graph.shape(name)

    def inputs(self, name: str) -> tuple[str, ...]:
        return self.graph[name].inputs

    def windows(self, name: str) -> tuple[Window, Window]:
        """The op's window along height and width."""
        node = self.graph[name]
        return node.op.windows(list(node.input_shapes))

    def whole(self, name: str) -> bool:
        """Every output unit sees the whole input (global pooling, attention)."""
        return any(w.whole for w in self.windows(name))

    def is_conv(self, name: str) -> bool:
        """A layer doing weighted work on an image tensor (conv2d, squeeze_excitation...)."""
        return (
            self.report.nodes[name].macs > 0
            and _spatial(self.shape(name))
            and all(_spatial(self.shape(i)) for i in self.inputs(name))
        )


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    summary: str
    severity: Severity
    check: Callable[[Context], Iterable[Hit]]


RULES: dict[str, Rule] = {}


def rule(
    code: str, summary: str, severity: Severity = "warning"
) -> Callable[[Callable[[Context], Iterable[Hit]]], Callable[[Context], Iterable[Hit]]]:
    """Register a rule function under `code` with a one-line `summary`."""

    def register(check: Callable[[Context], Iterable[Hit]]) -> Callable[[Context], Iterable[Hit]]:
        if code in RULES:
            raise ValueError(f"lint rule {code} is already registered")
        name = check.__name__.strip("_").replace("_", "-")
        RULES[code] = Rule(code, name, summary, severity, check)
        return check

    return register


def lint(source: Spec | str | Path, *, ignore: Iterable[str] = (), **options: Any) -> list[Finding]:
    """Every finding of every rule (but the `ignore`d codes), in spec order."""
    spec = load_spec(source)
    graph = build_graph(spec, **options)
    ctx = Context(spec, graph, analyze(graph), options)
    skip = set(ignore)
    unknown = skip - set(RULES)
    if unknown:
        raise ArchspecError(f"unknown lint code(s) {', '.join(sorted(unknown))}")
    findings: list[Finding] = []
    for code, r in RULES.items():
        if code not in skip:
            findings += _fold(r, list(r.check(ctx)), ctx)
    return sorted(findings, key=lambda f: (f.location.line or 0, f.location.column or 0, f.code))


def _fold(r: Rule, hits: list[Hit], ctx: Context) -> Iterator[Finding]:
    """One finding per spec line: block instances share the line of their block's layer."""
    by_place: dict[Location, list[Hit]] = {}
    for hit in hits:
        where = hit.location or ctx.graph[hit.node].location
        by_place.setdefault(where, []).append(hit)
    for where, group in by_place.items():
        first = group[0]
        message = f"node {first.node}: {first.message}" if first.node else first.message
        others = [h.node for h in group[1:]]
        if others:
            shown = ", ".join(others[:3]) + (
                f" and {len(others) - 3} more" if len(others) > 3 else ""
            )
            message += f" (also {shown})"
        yield Finding(r.code, r.severity, message, where, tuple(h.node for h in group))


def _spatial(shape: Shape) -> bool:
    return shape.layout in ("CHW", "HWC")


def _hw(shape: Shape) -> str:
    h, w = shape.spatial
    return f"{h}x{w}"


def _span(window: Window) -> int:
    return window.dilation * (window.kernel - 1) + 1


def _pair_text(values: tuple[int, int]) -> str:
    return str(values[0]) if values[0] == values[1] else f"[{values[0]}, {values[1]}]"


# --- rules ---------------------------------------------------------------------------------


@rule("AS101", "a convolution shrinks the feature map because its padding was left out")
def forgotten_padding(ctx: Context) -> Iterator[Hit]:
    # Only where the network otherwise keeps sizes at stride 1: valid-padding nets (LeNet)
    # shrink on purpose. Writing `padding: 0` explicitly says it is meant.
    keeps, shrinks = 0, []
    for name in ctx.nodes:
        ins, out = ctx.inputs(name), ctx.shape(name)
        if len(ins) != 1 or not (_spatial(ctx.shape(ins[0])) and _spatial(out)):
            continue
        ws = ctx.windows(name)
        if ctx.whole(name) or all(w.kernel <= 1 for w in ws) or any(w.stride != 1 for w in ws):
            continue
        op = ctx.op(name)
        if out.spatial == ctx.shape(ins[0]).spatial:
            keeps += 1
        elif (
            "padding" in type(op).model_fields
            and "padding" not in op.model_fields_set
            and all(w.padding == 0 for w in ws)
        ):
            shrinks.append(name)
    if keeps <= len(shrinks):
        return
    for name in shrinks:
        ws, before = ctx.windows(name), ctx.shape(ctx.inputs(name)[0])
        kh, kw = (w.kernel for w in ws)
        odd = kh % 2 and kw % 2
        keep = f"padding: {_pair_text((_span(ws[0]) // 2, _span(ws[1]) // 2))}"
        keep = keep if odd else "padding: same"
        yield Hit(
            name,
            f"{ctx.op(name).op} {kh}x{kw} without padding shrinks {_hw(before)} to "
            f"{_hw(ctx.shape(name))} where the rest of the network keeps sizes; "
            f"write {keep} to keep the size (or padding: 0 if shrinking is meant)",
        )


@rule("AS102", "the resolution collapses to 1x1 while convolutions still follow")
def resolution_collapse(ctx: Context) -> Iterator[Hit]:
    for name in ctx.nodes:
        ins, out = ctx.inputs(name), ctx.shape(name)
        if not (_spatial(out) and out.spatial == (1, 1)) or ctx.whole(name):
            continue
        if not any(_spatial(ctx.shape(i)) and ctx.shape(i).spatial != (1, 1) for i in ins):
            continue
        later = [
            d
            for d in nx.descendants(ctx.graph.digraph, name)
            if ctx.is_conv(d) and ctx.shape(d).spatial == (1, 1)
        ]
        if len(later) >= 2:
            source = ctx.shape(ins[0])
            size = _hw(source) if _spatial(source) else "more"
            yield Hit(
                name,
                f"the feature map collapses from {size} to 1x1 here and {len(later)} more "
                f"convolutions run on that single pixel (e.g. {sorted(later)[0]}); downsample "
                "less, or use a larger input",
            )


@rule("AS103", "downsampling layer after downsampling layer, nothing computed between", "info")
def downsampling_run(ctx: Context) -> Iterator[Hit]:
    # run[node] = (strided layers in a row ending here, their total stride, first of them)
    limit = 3
    run: dict[str, tuple[int, int, str]] = {INPUT: (0, 1, "")}
    for name in ctx.nodes:
        # at a merge, one branch that worked at this resolution is enough
        best = min((run[i] for i in ctx.inputs(name)), key=lambda r: r[0])
        if not _spatial(ctx.shape(ctx.inputs(name)[0])):
            run[name] = best
            continue
        ws = ctx.windows(name)
        stride = max(w.stride for w in ws)
        if ctx.whole(name) or (stride == 1 and any(w.kernel > 1 for w in ws)):
            run[name] = (0, 1, "")  # a layer that works at this resolution
        elif stride > 1:
            run[name] = (best[0] + 1, best[1] * stride, best[2] or name)
            if run[name][0] == limit:
                yield Hit(
                    name,
                    f"{limit} downsampling layers in a row (from {run[name][2]}) divide the "
                    f"resolution by {run[name][1]} with no layer working in between; put "
                    "stride-1 convolutions between them",
                )
        else:
            run[name] = best


@rule("AS104", "a deep stack of convolutions without normalization", "info")
def no_normalization(ctx: Context) -> Iterator[Hit]:
    limit = 8
    depth: dict[str, tuple[int, str]] = {INPUT: (0, "")}
    for name in ctx.nodes:
        best = max((depth[i] for i in ctx.inputs(name)), key=lambda d: d[0])
        if ctx.op(name).normalizes:
            depth[name] = (0, "")
        elif ctx.is_conv(name):
            depth[name] = (best[0] + 1, best[1] or name)
            if depth[name][0] == limit:
                yield Hit(
                    name,
                    f"{limit} convolutions in a row (from {depth[name][1]}) without "
                    "normalization; deep plain stacks train poorly: add batchnorm after the "
                    "convolutions",
                )
        else:
            depth[name] = best


def _reads_all(ctx: Context, name: str) -> bool:
    return all(w.stride <= _span(w) for w in ctx.windows(name))


def _unread(ctx: Context, name: str, siblings: list[str], axis: int) -> int:
    """How many of every `stride` input lines (along `axis`) neither `name` nor its siblings
    with the same stride read."""
    stride = ctx.windows(name)[axis].stride
    read: set[int] = set()
    for node in [name, *siblings]:
        w = ctx.windows(node)[axis]
        if w.stride <= _span(w):  # this one reads every line
            return 0
        if w.stride == stride:
            read |= {(k * w.dilation - w.padding) % stride for k in range(w.kernel)}
    return stride - len(read)


@rule("AS105", "a stride larger than the kernel: some pixels are never read")
def stride_over_kernel(ctx: Context) -> Iterator[Hit]:
    for name in ctx.nodes:
        source = ctx.inputs(name)[0]
        if not _spatial(ctx.shape(source)):
            continue
        if ctx.whole(name) or _reads_all(ctx, name):
            continue
        # siblings that read the other pixels of the same tensor (ResNet's projection shortcut
        # next to a stride-1 branch, Swin's four strided slices) mean nothing is lost
        siblings = [s for s in ctx.graph.users(source) if s != name]
        if any(ctx.whole(s) for s in siblings):
            continue
        ws = ctx.windows(name)
        missed = [_unread(ctx, name, siblings, axis) for axis in (0, 1)]
        if not any(missed):
            continue
        axis = 0 if missed[0] else 1
        w, lines = ws[axis], "rows" if axis == 0 else "columns"
        if all(missed):
            lines = "rows and columns"
        yield Hit(
            name,
            f"stride {_pair_text((ws[0].stride, ws[1].stride))} with a "
            f"{ws[0].kernel}x{ws[1].kernel} kernel"
            + (f" (dilation {w.dilation})" if w.dilation > 1 else "")
            + f" never reads {w.stride - _span(w)} of every {w.stride} {lines} of its input; "
            "use a kernel at least as large as the stride, or pool before",
        )


@rule("AS106", "a classifier whose features see only a small part of the input")
def small_receptive_field(ctx: Context) -> Iterator[Hit]:
    # The field of the features the head pools or flattens; global pooling averages local
    # features without enlarging what each one saw. Attention mixes globally: not checked.
    graph = ctx.graph
    if not any(ctx.shape(out).layout == "C" for out in graph.outputs):
        return  # no classifier output (a backbone)
    for name in ctx.nodes:
        if ctx.whole(name) and not _spatial(ctx.shape(ctx.inputs(name)[0])):
            return
    # pooled: the head, where the spatial extent is gone (a global pool, a flatten, and what
    # only reads those); a merge that broadcasts a pooled gate back over a feature map (a
    # hand-written squeeze-excite) is not the head
    pooled: set[str] = set()
    for name in ctx.nodes:
        ins = ctx.inputs(name)
        if ctx.whole(name) or not _spatial(ctx.shape(name)) or all(i in pooled for i in ins):
            pooled.add(name)
    largest = max(
        [1.0] + [ctx.report.nodes[n].receptive_field.size for n in ctx.nodes if n not in pooled]
    )
    # the head starts at the first pooling none of whose results go back into a feature map
    head = next(
        (
            n
            for n in ctx.nodes
            if n in pooled
            and _spatial(ctx.shape(ctx.inputs(n)[0]))
            and nx.descendants(graph.digraph, n) <= pooled
        ),
        "",
    )
    if head and not ctx.whole(head):
        return  # flatten + linear: every output reads every pixel, with its own weights
    height = graph.input_shape.spatial[0]
    if head and largest < height / 2:
        yield Hit(
            head,
            f"the features reaching the classifier see at most {largest:g}x{largest:g} pixels "
            f"of the {_hw(graph.input_shape)} input ({largest / height:.0%} of its "
            "height); add layers, downsampling or dilation before the head",
        )


@rule("AS107", "the layers only fit one input size, though the spec allows others")
def fixed_input_size(ctx: Context) -> Iterator[Hit]:
    # The spec allows other sizes when it sets input.size_multiple or presets a resolution.
    # Checked by building the graph at the neighbouring sizes: it must build, and no layer fed
    # a feature vector (flatten + linear) may change its parameter count. Position embeddings
    # change too, but they are resampled by convention, so tokens are not checked.
    spec = ctx.spec
    m = spec.input.size_multiple
    sizes = [r.resolution for r in spec.scaling.presets.values() if r.resolution]
    if "size_multiple" not in spec.input.model_fields_set and not sizes:
        return
    h, w = spec.input.hw
    others = [(h + m, w + m), (h - m, w - m), *((s, s) for s in sizes)]
    for size in dict.fromkeys(s for s in others if min(s) >= 1 and s != (h, w)):
        resized = spec.model_copy(
            update={"input": spec.input.model_copy(update={"size": list(size)})}
        )
        label = f"{size[0]}x{size[1]}"
        try:
            other = analyze(build_graph(resized, **ctx.options))
        except GraphError as exc:
            problem = exc.problems[0]
            yield Hit(
                "",
                f"the spec allows other input sizes (size_multiple {m}) but does not build at "
                f"{label}: {problem.message}",
                problem.location,
            )
            return
        for name in ctx.nodes:
            ins = ctx.inputs(name)
            before, after = ctx.report.nodes[name].params, other.nodes.get(name)
            if after is None or after.params == before or ctx.shape(ins[0]).layout != "C":
                continue
            yield Hit(
                name,
                f"{before:,} parameters at {h}x{w} but {after.params:,} at {label}: its "
                f"weights fit one input size only, though size_multiple {m} allows others; "
                "pool to a fixed size before flattening (adaptive_avgpool)",
            )
            return


def rule_table() -> list[tuple[str, str, str, str]]:
    """(code, name, severity, summary) of every registered rule."""
    return [(r.code, r.name, r.severity, r.summary) for r in RULES.values()]


__all__ = ["RULES", "Context", "Finding", "Hit", "Rule", "lint", "rule", "rule_table"]
