"""from_torch: a module -> a verified spec (YAML text and Spec); import_source writes it."""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archspec.importer.blocks import BlockConflict, recover_blocks
from archspec.importer.capture import ImportSourceError, first_line, load_source, trace
from archspec.importer.emit import flow, key, name_value, scalar
from archspec.importer.inplace import read_through
from archspec.importer.order import regroup
from archspec.importer.tree import Group, Leaf, TreeBuilder, resolve
from archspec.spec.limits import MAX_ACTIVATION_BYTES
from archspec.spec.model import Spec


@dataclass(frozen=True)
class Imported:
    """A verified import: the spec, its YAML text and what was checked."""

    spec: Spec
    text: str
    params: int
    max_abs_diff: float


def _items(group: Group) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in group.entries:
        if isinstance(e, Leaf):
            item: dict[str, Any] = {"op": e.item["op"], "name": e.name}
            if e.sources is not None:
                item["from"] = e.sources[0] if len(e.sources) == 1 else e.sources
            item.update({k: v for k, v in e.item.items() if k != "op"})
            item["_state"] = e.stateful
            out.append(item)
        else:
            item = {"name": e.name}
            if e.sources is not None:
                item["from"] = e.sources[0] if len(e.sources) == 1 else e.sources
            item["layers"] = _items(e)
            item["_class"] = e.module_class
            out.append(item)
    return out


def _referenced(items: list[dict[str, Any]], out: set[str]) -> set[str]:
    for item in items:
        src = item.get("from")
        names = [src] if isinstance(src, str) else (src or [])
        out.update(names)
        # `halves.1` reads the item `halves`; `stage.0.fuse_act` the items on that path (their
        # positions are their names: only names that are not positions are kept)
        for n in names:
            head, *rest = n.split(".")
            out.update([head, *(part for part in rest if not part.isdigit())])
        if "layers" in item:
            _referenced(item["layers"], out)
    return out


def _tidy(items: list[dict[str, Any]], keep: set[str]) -> None:
    """Drop names a reader need not see: stateless unreferenced ops, and names that are the
    item's position (what archspec would number it anyway)."""
    numeric = any(str(item.get("name", "")).isdigit() for item in items)
    bare = {n for n in _referenced(items, set()) if n.isdigit()}  # from here or inner groups
    for position, item in enumerate(items):
        name = item.get("name")
        if "layers" in item:
            _tidy(item["layers"], keep)
        if name is None or "block" in item:
            continue
        if name == str(position) and name not in bare:  # `from: "0"` (VoVNet) needs the name
            del item["name"]
        elif not numeric and not item.get("_state") and "layers" not in item and name not in keep:
            del item["name"]


def _lines(items: list[dict[str, Any]], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for item in items:
        clean = {k: v for k, v in item.items() if not k.startswith("_")}
        if "layers" in clean:
            head = [
                f"{key(k)}: {name_value(v) if k == 'name' else scalar(v)}"
                for k, v in clean.items()
                if k != "layers"
            ]
            if head:
                lines.append(f"{pad}- {head[0]}")
                lines += [f"{pad}  {h}" for h in head[1:]]
                lines.append(f"{pad}  layers:")
            else:
                lines.append(f"{pad}- layers:")
            lines += _lines(clean["layers"], indent + 4)
        else:
            if "name" in clean:
                clean["name"] = _Name(clean["name"])
            lines.append(f"{pad}- {flow(clean)}")
    return lines


class _Name(str):
    pass


def spec_text(
    root: Group, outputs: list[str], name: str, input_shape: Sequence[int], header: str = ""
) -> str:
    items = _items(root)
    try:
        trial = copy.deepcopy(items)
        blocks = recover_blocks(trial)
        items = trial
    except BlockConflict:  # blocks are for reading only: the plain groups are just as exact
        blocks = {}
    keep = _referenced(items, set()) | set(outputs)
    for body in blocks.values():
        keep |= _referenced(body["layers"], set())
    _tidy(items, keep)
    for body in blocks.values():
        _tidy(body["layers"], keep)
    c, h, w = input_shape
    size = h if h == w else [h, w]
    lines = [header.rstrip("\n")] if header else []
    lines += [f"name: {scalar(name)}", f"input: {{channels: {c}, size: {scalar(size)}}}"]
    if blocks:
        lines += ["", "blocks:"]
        for bname, body in blocks.items():
            lines.append(f"  {key(bname)}:")
            if body["params"]:
                lines.append("    params:")
                for p, d in body["params"].items():
                    if "default" in d:
                        value = f"{{type: {d['type']}, default: {scalar(d['default'])}}}"
                    else:
                        value = d["type"]
                    lines.append(f"      {key(p)}: {value}")
            lines.append("    layers:")
            lines += _lines(body["layers"], 6)
    lines += ["", "layers:"]
    lines += _lines(items, 2)
    last = items[-1] if items else {}
    if outputs and not (
        len(outputs) == 1
        and outputs[0] == last.get("name", outputs[0])
        and _is_last(root, outputs[0])
    ):
        lines.append("outputs: [" + ", ".join(scalar(o) for o in outputs) + "]")
    return "\n".join(lines) + "\n"


def _is_last(root: Group, name: str) -> bool:
    return bool(root.entries) and root.entries[-1].name == name


def from_torch(
    module: nn.Module,
    input_shape: Sequence[int] = (3, 224, 224),
    *,
    name: str | None = None,
    source: str | None = None,
    atol: float = 1e-4,
) -> Spec:
    """The spec of `module`: traced, mapped op for op, blocks and repeats recovered from its
    module hierarchy, its names kept (so `load_state_dict(module.state_dict(), strict=True)`
    works on the built spec) and verified on a fixed input in eval mode. Raises
    ImportSourceError listing what could not be mapped."""
    return import_module(module, input_shape, name=name, source=source, atol=atol).spec


def import_module(
    module: nn.Module,
    input_shape: Sequence[int] = (3, 224, 224),
    *,
    name: str | None = None,
    source: str | None = None,
    atol: float = 1e-4,
) -> Imported:
    import archspec

    if len(input_shape) != 3 or not all(isinstance(n, int) and n > 0 for n in input_shape):
        raise ImportSourceError(
            f"input shape: expected channels,height,width (positive integers); got "
            f"{list(input_shape)}"
        )
    # the example batch of 2 alone must fit under the activation limit, before it is allocated
    MAX_ACTIVATION_BYTES.check(
        4 * math.prod(input_shape), f"an input of {'x'.join(map(str, input_shape))} is"
    )
    module = module.eval()
    x = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the reference output, computed once; refused here if it fails
        expected = _run(module, x, source)
    captured = trace(module, x)
    gm = captured.graph
    read_through(gm)
    builder = TreeBuilder(gm, module)
    root = builder.build()
    if builder.interleaved:  # HRNet's fuse layers: each module's calls together, then again
        regroup(gm)
        builder = TreeBuilder(gm, module, reopen=True)  # Res2Net's lists, which data interleave
        root = builder.build()
    if builder.problems.count:
        raise ImportSourceError(builder.problems.lines())
    _check_all_weights_used(module, gm)
    outputs = resolve(root, builder)
    spec_name = (name or source or type(module).__name__).split(":")[-1]
    spec_name = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in spec_name.lower())
    text = spec_text(root, outputs, spec_name, input_shape)
    try:
        spec = archspec.load_spec(text)
        built = archspec.build(spec).eval()
    except archspec.ArchspecError as exc:
        first = str(exc).splitlines()[0]
        raise ImportSourceError(f"the imported spec does not build: {first}") from exc
    params = sum(p.numel() for p in module.parameters())
    got = sum(p.numel() for p in built.parameters())
    if got != params:
        raise ImportSourceError(f"parameters differ: the source has {params:,}, the spec {got:,}")
    theirs, ours = list(module.state_dict()), list(built.state_dict())
    if set(theirs) != set(ours):
        missing = sorted(set(theirs) - set(ours))[:3]
        extra = sorted(set(ours) - set(theirs))[:3]
        raise ImportSourceError(f"state_dict keys differ: missing {missing}, unexpected {extra}")
    try:
        built.load_state_dict(module.state_dict(), strict=True)
    except RuntimeError as exc:
        raise ImportSourceError(f"load_state_dict: {str(exc).splitlines()[0][:300]}") from exc
    with torch.no_grad():
        result = built(x)
    expected_t = expected if isinstance(expected, (tuple, list)) else [expected]
    result_t = result if isinstance(result, (tuple, list)) else [result]
    diff = 0.0
    for a, b in zip(expected_t, result_t, strict=True):
        if a.shape != b.shape:
            raise ImportSourceError(
                f"outputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}"
            )
        diff = max(diff, (a - b).abs().max().item())
    if diff > atol:
        raise ImportSourceError(f"outputs differ by up to {diff:.3g} (tolerance {atol:g})")
    header = (
        f"# imported by `archspec import {source or type(module).__name__}` at input "
        f"{'x'.join(map(str, input_shape))}\n"
        f"# verified: {params:,} parameters, state_dict keys identical, outputs within "
        f"{diff:.1e} in eval mode\n"
    )
    if captured.how:
        header += f"# {captured.how}\n"
    text = header + text
    return Imported(archspec.load_spec(text), text, params, diff)


def _run(module: nn.Module, x: torch.Tensor, source: str | None) -> Any:
    """The source's own eval-mode output on `x`; a model that cannot run on that input is
    refused before any tracing (a ViT built for 224 px given 64 px)."""
    name = source or type(module).__name__
    inputs = [
        p.name
        for p in inspect.signature(module.forward).parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if len(inputs) > 1:
        raise ImportSourceError(
            f"{name}: its forward takes {len(inputs)} inputs ({', '.join(inputs)}); only models "
            "with one input can be imported"
        )
    try:
        out = module(x)
    except Exception as exc:  # whatever the user's model raises, reported in one line
        raise ImportSourceError(
            f"{name} does not run on a "
            f"{'x'.join(map(str, x.shape[1:]))} input: {type(exc).__name__}: "
            f"{first_line(exc, 300)} (a model "
            "built for another input size? give --input, or its size argument in --kwargs, "
            "such as timm's '{\"img_size\": 64}')"
        ) from exc
    parts = out if isinstance(out, (tuple, list)) else [out]
    if not all(isinstance(part, torch.Tensor) for part in parts):
        what = type(out).__name__
        if isinstance(out, dict):
            what += f" ({', '.join(map(str, list(out)[:8]))}{', ...' if len(out) > 8 else ''})"
        elif parts is out:  # a tuple or list
            kinds = sorted({type(part).__name__ for part in parts})
            what += f" of {', '.join(kinds)}"
        raise ImportSourceError(
            f"{name} returns a {what}; a spec's outputs are tensors: import a wrapper whose "
            "forward returns a tensor or a tuple of tensors"
        )
    return out


def _check_all_weights_used(module: nn.Module, gm: torch.fx.GraphModule) -> None:
    """Weights no forward reaches (an auxiliary head used only in training) have no place in
    the traced graph: say which, rather than report a parameter mismatch."""
    used = {str(n.target) for n in gm.graph.nodes if n.op in ("call_module", "get_attr")}
    # a buffer the forward reads through a view (`index.view(-1)`) is a constant in the trace
    constants = [
        getattr(gm, str(n.target))
        for n in gm.graph.nodes
        if n.op == "get_attr" and str(n.target).startswith("_tensor_constant")
    ]
    unused: dict[str, int] = {}
    for name, tensor in module.state_dict().items():
        parts = name.split(".")
        if any(".".join(parts[:i]) in used for i in range(1, len(parts) + 1)):
            continue
        if any(
            c.dtype == tensor.dtype
            and c.numel() == tensor.numel()
            and torch.equal(c.flatten(), tensor.flatten())
            for c in constants
        ):
            continue
        top = name.split(".")[0]
        unused[top] = unused.get(top, 0) + tensor.numel()
    if unused:
        listed = ", ".join(f"{k} ({v:,} values)" for k, v in unused.items())
        raise ImportSourceError(
            f"weights the eval-mode forward never uses: {listed}; build the model without them "
            "(an auxiliary head: aux_logits=False)"
        )


def import_source(
    source: str,
    output: str | Path | None = None,
    *,
    input_shape: Sequence[int] = (3, 224, 224),
    kwargs: dict[str, Any] | None = None,
    force: bool = False,
) -> Imported:
    """`archspec import`: load SOURCE, import and verify it, write the YAML atomically."""
    module, name = load_source(source, kwargs)
    imported = import_module(module, input_shape, name=name, source=source)
    if output is not None:
        from archspec.export.atomic import atomic_path

        with atomic_path(output, force=force) as tmp:
            tmp.write_text(imported.text)
    return imported
