"""Blocks and `repeat:` recovered from the module hierarchy: a container whose children are
instances of one module class named 0..n-1 is a stage; the instances of a class (across stages
where they fit together) become one block whose parameters are what varies between them."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from archspec.ops import get_op

CHANNEL_FIELDS = {"out_channels", "out_features", "squeeze_channels", "hidden_features"}
PAIR_FIELDS = {"kernel_size", "stride", "padding", "dilation", "output_size"}
_MISSING = object()


class BlockConflict(Exception):
    """Instances that do not fit one block (the import falls back to plain groups)."""


_Conflict = BlockConflict


@dataclass
class Slot:
    """One place in a block template whose value differs between instances."""

    field: str  # the op field, or "when" for an optional item
    owner: str  # the item's name
    values: list[Any]  # per instance; _MISSING where the instance lacks the item
    name: str = ""


@dataclass
class Template:
    items: list[dict[str, Any]]
    slots: list[Slot] = field(default_factory=list)


def _default(op: str, name: str) -> Any:
    try:
        info = get_op(op).model_fields.get(name)
    except KeyError:
        return _MISSING
    if info is None or info.is_required():
        return _MISSING
    return info.default


def _union_names(lists: list[list[dict[str, Any]]]) -> list[str]:
    order: list[str] = []
    for items in lists:
        last = -1
        for item in items:
            name = item["name"]
            if name in order:
                position = order.index(name)
                if position < last:
                    raise _Conflict(f"items in another order: {name}")
                last = position
            else:
                last += 1
                order.insert(last, name)
    return order


def _merge(lists: list[list[dict[str, Any]]], slots: list[Slot]) -> list[dict[str, Any]]:
    """The union of the instances' item lists, values that differ replaced by slot markers."""
    names = _union_names(lists)
    n = len(lists)
    merged: list[dict[str, Any]] = []
    by_name = [{item["name"]: item for item in items} for items in lists]
    _skipped_names_stand_for_inputs(by_name)
    for name in names:
        present = [b.get(name) for b in by_name]
        if any(p is not None and "layers" in p for p in present):
            # an identity where other instances have a group: the group switched off (a
            # skipped item passes its input through, as nn.Identity does)
            present = [
                None if p is not None and p.get("op") == "identity" and not p.get("from") else p
                for p in present
            ]
        items = [p for p in present if p is not None]
        kinds = {("op", i["op"]) if "op" in i else ("group",) for i in items}
        if len(kinds) != 1:
            raise _Conflict(f"{name}: different kinds")
        sources = {repr(i.get("from")) for i in items}
        if len(sources) != 1:
            raise _Conflict(f"{name}: reads different items")
        out: dict[str, Any] = {"name": name}
        if "from" in items[0]:
            out["from"] = items[0]["from"]
        if len(items) < n:
            slot = Slot("when", name, [p is not None for p in present])
            slots.append(slot)
            out["when"] = slot
        if "op" in items[0]:
            op = items[0]["op"]
            out = {"op": op, **out}
            fields: list[str] = []
            for i in items:
                fields += [
                    k
                    for k in i
                    if k not in ("op", "name", "from", "when", "_state") and k not in fields
                ]
            for key in fields:
                default = _default(op, key)
                values = [_MISSING if p is None else p.get(key, default) for p in present]
                real = [v for v in values if v is not _MISSING]
                if any(v is _MISSING for v in real):
                    raise _Conflict(f"{name}.{key}: no default")
                if all(repr(v) == repr(real[0]) for v in real):
                    if repr(real[0]) != repr(default):
                        out[key] = real[0]
                else:
                    slot = Slot(key, name, values)
                    slots.append(slot)
                    out[key] = slot
            out["_state"] = items[0].get("_state", False)
        else:
            have = [k for k, p in enumerate(present) if p is not None]
            before = len(slots)
            out["layers"] = _merge([present[k]["layers"] for k in have], slots)  # type: ignore[index]
            # the sub-merge's slots saw only the instances that have the group: re-align
            for slot in slots[before:]:
                full: list[Any] = [_MISSING] * n
                for k, v in zip(have, slot.values, strict=True):
                    full[k] = v
                slot.values = full
        merged.append(out)
    return merged


def _skipped_names_stand_for_inputs(by_name: list[dict[str, dict[str, Any]]]) -> None:
    """An instance without item X that reads X's input where the others read X (ResNet's
    `add` of `downsample` or of the block input) reads X too: a skipped item's name stands for
    its input, so the block is written once, with `when:` on X."""
    reads: dict[str, str] = {}
    for instance in by_name:
        for name, item in instance.items():
            if isinstance(item.get("from"), str):
                reads.setdefault(name, item["from"])
    for k, instance in enumerate(by_name):
        for name, item in list(instance.items()):
            mine = item.get("from")
            if not isinstance(mine, list):
                continue
            for other in by_name:
                theirs = other.get(name, {}).get("from")
                if other is instance or not isinstance(theirs, list) or len(theirs) != len(mine):
                    continue
                fixed = [
                    t if (m != t and t not in instance and reads.get(t) == m) else m
                    for m, t in zip(mine, theirs, strict=True)
                ]
                if fixed != mine:
                    instance[name] = {**item, "from": fixed}
                    by_name[k] = instance
                    break


def _kind(slot: Slot) -> str:
    values = [v for v in slot.values if v is not _MISSING]
    if slot.field == "when" or all(isinstance(v, bool) for v in values):
        return "bool"
    if slot.field in PAIR_FIELDS and any(isinstance(v, list) for v in values):
        return "pair"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "channels" if slot.field in CHANNEL_FIELDS else "int"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float"
    if all(isinstance(v, str) for v in values):
        return "str"
    if all(isinstance(v, list) for v in values):
        return "list"
    raise _Conflict(f"{slot.owner}.{slot.field}: mixed value types")


def _same(a: Slot, b: Slot) -> bool:
    if _kind(a) != _kind(b):
        return False
    both = [
        (x, y)
        for x, y in zip(a.values, b.values, strict=True)
        if x is not _MISSING and y is not _MISSING
    ]
    return bool(both) and all(repr(x) == repr(y) for x, y in both)


def _name_slots(slots: list[Slot]) -> list[Slot]:
    """Slots that always agree share one parameter; parameters are named after the field, or
    the item and field where the field name is taken."""
    distinct: list[Slot] = []
    for slot in slots:
        twin = next((d for d in distinct if _same(d, slot)), None)
        if twin is None:
            distinct.append(slot)
        else:
            twin.values = [
                y if x is _MISSING else x for x, y in zip(twin.values, slot.values, strict=True)
            ]
            slot.name = "<twin>"
            slot.values = twin.values  # for naming below
            slot.__dict__["twin"] = twin
    counts = Counter(s.field for s in distinct)
    widths = [s for s in distinct if s.field in ("out_channels", "out_features")]
    used: set[str] = set()
    for s in distinct:
        base = s.owner if s.field == "when" else s.field
        if s in widths and len(widths) > 1:
            # the last width is the block's output; the ones before are inner widths
            base = "out_channels" if s is widths[-1] else "width"
        elif s.field != "when" and counts[s.field] > 1:
            base = f"{s.owner}_{s.field}"
        base = re.sub(r"\W", "_", base)
        if base[0].isdigit():
            base = "p" + base
        name, k = base, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        s.name = name
    for s in slots:
        if "twin" in s.__dict__:
            s.name = s.__dict__["twin"].name
    return distinct


def _fill(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        new: dict[str, Any] = {}
        for k, v in item.items():
            if isinstance(v, Slot):
                new[k] = f"${v.name}"
            elif k == "layers":
                new[k] = _fill(v)
            else:
                new[k] = v
        out.append(new)
    return out


@dataclass
class Stage:
    parent: list[dict[str, Any]]  # the list holding the stage item
    position: int
    item: dict[str, Any]
    instances: list[dict[str, Any]]
    cls: str
    loose: bool = False  # one instance among other children: a block use without repeat


def _closed(instance: dict[str, Any]) -> bool:
    """True when the instance reads nothing from outside but its input (a block is not
    lexical)."""
    defined: set[str] = set()
    reads: set[str] = set()

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            defined.add(item["name"])
            src = item.get("from")
            reads.update(n.split(".")[0] for n in ([src] if isinstance(src, str) else (src or [])))
            if "layers" in item:
                walk(item["layers"])

    walk(instance["layers"])
    return reads <= defined | {"input"} and not instance.get("from")


def find_stages(items: list[dict[str, Any]], out: list[Stage]) -> None:
    for position, item in enumerate(items):
        if "layers" not in item:
            continue
        children = item["layers"]
        if (
            children
            and all("layers" in c for c in children)
            and [c["name"] for c in children] == [str(i) for i in range(len(children))]
            and len({c["_class"] for c in children}) == 1
            and children[0]["_class"] not in _CONTAINERS
            and all(_closed(c) for c in children)
        ):
            out.append(Stage(items, position, item, children, children[0]["_class"]))
        elif item.get("_class") not in _CONTAINERS and _closed(item) and not _holds_run(item):
            out.append(Stage(items, position, item, [item], item["_class"], loose=True))
        else:
            find_stages(children, out)


def _holds_run(item: dict[str, Any]) -> bool:
    """A module whose children are several instances of one class (RegNet's AnyStage): its
    children are the blocks, not the module itself."""
    classes = Counter(c.get("_class") for c in item["layers"] if "layers" in c)
    return any(n > 1 and cls not in _CONTAINERS for cls, n in classes.items())


_CONTAINERS = {"", "Sequential", "Module", "ModuleList", "ModuleDict", "GraphModule"}


def _snake(name: str) -> str:
    """MBConv -> mbconv, InvertedResidual -> inverted_residual."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower() or "block"


def _uniform(values: list[Any]) -> bool:
    real = [v for v in values if v is not _MISSING]
    return all(repr(v) == repr(real[0]) for v in real) if real else True


def recover_blocks(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rewrite stages in `items` (in place) as block items with repeat; returns the blocks."""
    stages: list[Stage] = []
    find_stages(items, stages)
    instances = Counter(s.cls for s in stages for _ in s.instances)
    stages = [s for s in stages if not s.loose or instances[s.cls] > 1]
    by_class: dict[str, list[Stage]] = {}
    for stage in stages:
        by_class.setdefault(stage.cls, []).append(stage)
    blocks: dict[str, dict[str, Any]] = {}
    replacements: dict[int, dict[str, Any]] = {}
    depth = 0
    order = {id(s): k for k, s in enumerate(stages)}
    total = sum(len(s.instances) for s in stages if not s.loose)
    starts: dict[int, int] = {}
    for s in stages:
        starts[id(s)] = -1 if s.loose else depth  # only repeats count in depth_index
        depth += 0 if s.loose else len(s.instances)
    for cls, group in by_class.items():
        # greedy: each stage joins the first cluster of its class it fits with
        clusters: list[list[Stage]] = []
        results: list[Any] = []
        for stage in group:
            for k, cluster in enumerate(clusters):
                try:
                    results[k] = _block_for([*cluster, stage], starts, total)
                except _Conflict:
                    continue
                cluster.append(stage)
                break
            else:
                try:
                    result = _block_for([stage], starts, total)
                except _Conflict:
                    continue
                clusters.append([stage])
                results.append(result)
        kept = [
            (cluster, result)
            for cluster, result in zip(clusters, results, strict=True)
            if result is not None and not (len(cluster) == 1 and cluster[0].loose)
        ]
        clusters, results = [c for c, _ in kept], [r for _, r in kept]
        for k, (cluster, result) in enumerate(zip(clusters, results, strict=True)):
            body, uses = result
            name = _snake(cls) if len(clusters) == 1 else f"{_snake(cls)}_{k + 1}"
            while name in blocks:
                name += "_"
            blocks[name] = body
            for stage, use in zip(cluster, uses, strict=True):
                replacements[id(stage)] = {"block": name, **use}
    # no block fits these stages: look inside them, all together (one block table)
    inside = [
        {"name": "", "_class": "", "layers": instance["layers"]}
        for stage in stages
        if id(stage) not in replacements and not stage.loose
        for instance in stage.instances
    ]
    if inside:
        for name, body in recover_blocks(inside).items():
            if name in blocks:  # rare: the same class at two levels
                raise _Conflict(f"block {name} at two levels")
            blocks[name] = body
    for stage in sorted(stages, key=lambda s: -order[id(s)]):
        use = replacements.get(id(stage))
        if use is not None:
            new = {"block": use["block"], "name": stage.item["name"]}
            if stage.item.get("from"):
                new["from"] = stage.item["from"]
            if stage.loose:  # one instance: its values are its arguments
                args = {**use.get("args", {}), **use.get("first", {})}
                if args:
                    new["args"] = args
            else:
                new.update({k: v for k, v in use.items() if k != "block"})
            stage.parent[stage.position] = new
    return blocks


def _block_for(
    cluster: list[Stage], starts: dict[int, int], total: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    instances = [i for s in cluster for i in s.instances]
    slots: list[Slot] = []
    template = _merge([i["layers"] for i in instances], slots)
    distinct = _name_slots(slots)
    params: dict[str, Any] = {}
    spans: list[tuple[int, int]] = []
    k = 0
    for s in cluster:
        spans.append((k, k + len(s.instances)))
        k += len(s.instances)
    global_index = [starts[id(s)] + i for s in cluster for i in range(len(s.instances))]
    uses: list[dict[str, Any]] = [{"repeat": b - a} for a, b in spans]
    for slot in distinct:
        kind = _kind(slot)
        values = slot.values
        real = [v for v in values if v is not _MISSING]
        # a value that follows depth: drop-path rates c * depth_index / depth_total
        if kind == "float" and not all(_uniform(values[a + 1 : b]) for a, b in spans):
            if any(s.loose for s in cluster):
                raise _Conflict(f"{slot.name}: follows depth, outside a repeat")
            c = _depth_rate(values, global_index, total)
            if c is None:
                raise _Conflict(f"{slot.name}: varies within a stage")
            params[slot.name] = {
                "type": "float",
                "default": f"${{{c!r} * depth_index / depth_total}}",
            }
            continue
        common = Counter(repr(v) for v in real).most_common(1)[0][0]
        default = next(v for v in real if repr(v) == common)
        if kind == "channels":  # widths: every stage says its own, as in the zoo
            params[slot.name] = {"type": kind}
            for (a, b), use in zip(spans, uses, strict=True):
                rest = [v for v in values[a + 1 : b] if v is not _MISSING]
                if not _uniform(rest):
                    raise _Conflict(f"{slot.name}: varies within a stage")
                first = values[a]
                arg = rest[0] if rest else first
                if arg is _MISSING:
                    raise _Conflict(f"{slot.name}: no value for a stage")
                use.setdefault("args", {})[slot.name] = arg
                if first is not _MISSING and repr(first) != repr(arg):
                    use.setdefault("first", {})[slot.name] = first
            continue
        params[slot.name] = {"type": kind, "default": default}
        for (a, b), use in zip(spans, uses, strict=True):
            rest = [v for v in values[a + 1 : b] if v is not _MISSING]
            if not _uniform(rest):
                raise _Conflict(f"{slot.name}: varies within a stage")
            arg = rest[0] if rest else default
            if repr(arg) != repr(default) and rest:
                use.setdefault("args", {})[slot.name] = arg
            first = values[a]
            base = arg if rest else default
            if first is not _MISSING and repr(first) != repr(base):
                use.setdefault("first", {})[slot.name] = first
            elif first is _MISSING and kind != "bool" and not rest:
                pass
    body = {"params": params, "layers": _fill(template)}
    return body, uses


def _depth_rate(values: list[Any], index: list[int], total: int) -> float | None:
    for v, d in zip(values, index, strict=True):
        if v is _MISSING:
            continue
        if d:
            c = v * total / d
            break
    else:
        return None
    for v, d in zip(values, index, strict=True):
        if v is not _MISSING and not math.isclose(c * d / total, v, rel_tol=1e-9, abs_tol=1e-12):
            return None
    return round(c, 12)
