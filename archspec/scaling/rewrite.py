"""Compound scaling as a spec -> spec rewrite (EfficientNet, Tan & Le 2019, section 3.3).

Only numbers written literally are scaled, by the type of the place they are written in:
`channels` places (op fields such as conv2d.out_channels, block args and options typed
`channels`) by the width multiplier with `make_divisible`; stage/group `repeat` by the depth
multiplier and a depth rule (`scaling.scale_depth`: "ceil" per stage, torchvision's and the
default, or "spread" over the total); the input size by the resolution multiplier, rounded to
`input.size_multiple`; `kernel` places of a named top-level stage by a kernel choice.
Expressions are left alone: they are computed from already scaled values.
"""

from __future__ import annotations

import copy
from typing import Any

from archspec.errors import Problem, ScaleError, SpecError, unknown_message
from archspec.ops import get_op
from archspec.ops.base import scalable_axis
from archspec.scaling.rules import DEPTH_RULES, DepthRule, make_divisible, scale_depth, scale_size
from archspec.spec.dump import spec_data
from archspec.spec.expr import is_expression
from archspec.spec.load import spec_from_source
from archspec.spec.model import Spec
from archspec.spec.yamlsource import PathKey, Source


def scale(
    spec: Spec,
    *,
    width: float = 1.0,
    depth: float = 1.0,
    resolution: float = 1.0,
    size: int | None = None,
    kernels: dict[str, int] | None = None,
    divisor: int | None = None,
    options: dict[str, Any] | None = None,
    depth_rule: DepthRule = "ceil",
) -> Spec:
    """A new, fully valid spec: `width`, `depth`, `resolution` multipliers (or an absolute
    input `size`), per-stage `kernels` ({stage name: kernel size}), new option defaults;
    `depth_rule` "ceil" (each stage's repeats rounded up) or "spread" (the total rounded and
    spread over the stages, last stages first)."""
    for label, value in (("width", width), ("depth", depth), ("resolution", resolution)):
        if not (isinstance(value, (int, float)) and 0 < value <= 16):
            raise ScaleError(f"{label} multiplier must be in (0, 16]; got {value!r}")
    if depth_rule not in DEPTH_RULES:
        raise ScaleError(unknown_message("depth rule", depth_rule, DEPTH_RULES))
    data = copy.deepcopy(spec_data(spec))
    divisor = divisor or spec.scaling.divisor
    _Rewrite(spec, width, divisor, keep=head_literals(spec)).spec_data(data)
    if depth != 1.0:
        items = repeat_items(data)
        counts = scale_depth([item["repeat"] for item in items], depth, depth_rule)
        for item, count in zip(items, counts, strict=True):
            item["repeat"] = count
    if kernels:
        _apply_kernels(spec, data, kernels, options or {})
    data["input"] = _scale_input(data["input"], spec, resolution, size)
    if options:
        _apply_options(spec, data, options)
    source = spec._source or Source(None, f"<{spec.name}>")
    asked = _describe(width, depth, resolution, size, kernels)
    try:
        scaled = spec_from_source(Source(data, source.file, source.values, source.keys))
        if all(not pdef.required for pdef in scaled.options.values()):
            from archspec.graph import build_graph

            build_graph(scaled)  # never hand back a spec that does not build
    except SpecError as exc:
        message = f"{asked} gives an invalid spec: "
        raise ScaleError([Problem(p.location, message + p.message) for p in exc.problems]) from exc
    return scaled


def _describe(
    width: float, depth: float, resolution: float, size: int | None, kernels: dict | None
) -> str:
    parts = [f"{k} {v:g}" for k, v in (("width", width), ("depth", depth)) if v != 1.0]
    if size is not None:
        parts.append(f"size {size}")
    elif resolution != 1.0:
        parts.append(f"resolution {resolution:g}")
    parts += [f"{stage} kernel {k}" for stage, k in (kernels or {}).items()]
    return "scaling by " + (", ".join(parts) or "nothing")


def repeat_items(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The items of spec data with a literal `repeat`, blocks' first, then the network's layers
    in order (so the last stages come last)."""
    found: list[dict[str, Any]] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            if isinstance(item.get("repeat"), int) and not isinstance(item["repeat"], bool):
                found.append(item)
            walk(item.get("layers") or [])

    for block in data.get("blocks", {}).values():
        walk(block["layers"])
    walk(data["layers"])
    return found


def repeat_literals(spec: Spec) -> list[int]:
    """The literal repeat counts of a spec, in the order the depth rule sees them."""
    return [item["repeat"] for item in repeat_items(spec_data(spec))]


def channel_literals(spec: Spec) -> list[int]:
    """Every literal value in a `channels` place, i.e. what the width multiplier rescales."""
    collect = _Collect(spec, 2.0, spec.scaling.divisor)
    collect.spec_data(copy.deepcopy(spec_data(spec)))
    return collect.seen


def head_literals(spec: Spec) -> set[PathKey]:
    """The op items whose literal channels are the task's, not the network's width: for each
    network output that is a vector per sample, the layer that sets its length on a vector
    (a classifier's or regressor's linear), found by walking back through length-preserving
    layers (dropout, activations). `out_features: 10` on the last linear stays 10 at any
    width; a backbone's channels scale, pooled or not. A head that sets its classes on a
    feature map (SqueezeNet's conv) is not recognised: write its count as an int option
    (`out_channels: $num_classes`). Empty when the spec needs option values."""
    if any(pdef.required for pdef in spec.options.values()):
        return set()
    from archspec.graph import INPUT, build_graph

    graph = build_graph(spec)
    keep: set[PathKey] = set()
    for out in graph.outputs:
        node = graph[out]
        if node.shape.layout != "C":
            continue
        while (
            len(node.inputs) == 1
            and node.inputs[0] != INPUT
            and node.input_shapes[0].channels == node.shape.channels
        ):
            node = graph[node.inputs[0]]
        if node.shape.layout == "C":
            keep.add(node.path)
    return keep


class _Rewrite:
    def __init__(self, spec: Spec, width: float, divisor: int, keep: set[PathKey] | None = None):
        self.spec, self.width, self.divisor = spec, width, divisor
        self.keep = keep or set()  # op items whose channels stay (head_literals)

    def spec_data(self, data: dict[str, Any]) -> None:
        """Rewrite every channels place of spec data in place: option and block parameter
        defaults, block layers, then the network's layers."""
        blocks = data.get("blocks", {}).values()
        for params in [data.get("options", {})] + [b.get("params", {}) for b in blocks]:
            self.param_defaults(params)
        for name, block in data.get("blocks", {}).items():
            self.items(block["layers"], ("blocks", name, "layers"))
        self.items(data["layers"], ("layers",))

    def channels(self, value: Any) -> Any:
        if self.width == 1.0 or is_expression(value) or not isinstance(value, int):
            return value
        return make_divisible(value * self.width, self.divisor)

    def param_defaults(self, params: dict[str, Any]) -> None:
        for pdef in params.values():
            if isinstance(pdef, dict) and pdef.get("type") == "channels" and "default" in pdef:
                pdef["default"] = self.channels(pdef["default"])

    def items(self, items: list[dict[str, Any]], path: PathKey) -> None:
        for index, item in enumerate(items):
            if "op" in item and (*path, index) not in self.keep:
                for key, field in get_op(item["op"]).model_fields.items():
                    if key in item and scalable_axis(field) == "width":
                        item[key] = self.channels(item[key])
            if "block" in item:
                types = self._block_types(item["block"])
                for group in ("args", "first"):
                    for key, value in item.get(group, {}).items():
                        if types.get(key) == "channels":
                            item[group][key] = self.channels(value)
            if "layers" in item:
                self.items(item["layers"], (*path, index, "layers"))

    def _block_types(self, name: str) -> dict[str, str]:
        block = self.spec.blocks.get(name)
        return {k: p.type for k, p in block.params.items()} if block else {}


class _Collect(_Rewrite):
    """Records the channel literals the rewrite would scale, and leaves them as they are."""

    def __init__(self, spec: Spec, width: float, divisor: int):
        super().__init__(spec, width, divisor)
        self.seen: list[int] = []

    def channels(self, value: Any) -> Any:
        if not is_expression(value) and isinstance(value, int):
            self.seen.append(value)
        return value


def _apply_kernels(
    spec: Spec, data: dict[str, Any], kernels: dict[str, int], options: dict[str, Any]
) -> None:
    targets = kernel_targets(spec, **options)
    for stage, kernel in kernels.items():
        if not isinstance(kernel, int) or kernel < 1:
            raise ScaleError(f"kernel for stage {stage!r} must be a positive int; got {kernel!r}")
        path = targets.get(stage)
        if path is None:
            stages = [name for name, p in targets.items() if _at(data, p).get("block")]
            raise ScaleError(unknown_message("stage", stage, stages or targets))
        try:
            changed = _set_kernels(spec, _at(data, path), kernel)
        except ScaleError as exc:
            raise ScaleError(f"stage {stage!r}: {exc.message}") from exc
        if not changed:
            raise ScaleError(f"stage {stage!r} has no kernel-typed parameter to choose")


def kernel_targets(spec: Spec, **options: Any) -> dict[str, tuple[str | int, ...]]:
    """The items a kernel choice can name, by their node path in the built graph (`layer3`,
    `features.3`; unnamed items numbered as the graph numbers them), each with the spec path
    it is written at. A choice applies to every repeat of the item it names."""
    from archspec.graph import build_graph

    parts = build_graph(spec, **options).parts.values()
    targets: dict[str, tuple[str | int, ...]] = {}
    seen: set[tuple[str | int, ...]] = set()
    for part in sorted(parts, key=lambda p: p.name.count(".")):  # a stage before its repeats
        if part.path[0] == "layers" and part.path not in seen:
            targets[part.name] = part.path
            seen.add(part.path)
    return targets


def _at(data: dict[str, Any], path: tuple[str | int, ...]) -> dict[str, Any]:
    node: Any = data
    for key in path:
        node = node[key]
    return node


def _set_kernels(spec: Spec, item: dict[str, Any], kernel: int) -> int:
    changed = 0
    if "block" in item:
        block = spec.blocks[item["block"]]
        for key, pdef in block.params.items():
            if pdef.type == "kernel":
                item.setdefault("args", {})[key] = kernel
                item.get("first", {}).pop(key, None)
                changed += 1
    if "op" in item:
        for key, field in get_op(item["op"]).model_fields.items():
            if key in item and scalable_axis(field) == "kernel":
                value = item[key]
                if isinstance(value, list) and any(is_expression(v) for v in value):
                    continue  # [1, $k]: set through the block parameter it reads
                if isinstance(value, list) and len(set(value)) != 1:
                    raise ScaleError(
                        f"a kernel choice ({kernel}) sets square kernels; {item['op']} "
                        f"{key} {value} is not square (make the sizes block parameters of "
                        "type kernel to choose them)"
                    )
                item[key] = kernel
                changed += 1
    for child in item.get("layers", []) or []:
        changed += _set_kernels(spec, child, kernel)
    return changed


def _scale_input(inp: dict[str, Any], spec: Spec, resolution: float, size: int | None) -> dict:
    inp = dict(inp)
    multiple = spec.input.size_multiple
    h, w = spec.input.hw
    if size is not None:
        new = (size, size)
    elif resolution != 1.0:
        new = scale_size((h, w), resolution, multiple)
    else:
        return inp
    inp["size"] = new[0] if new[0] == new[1] else list(new)
    return inp


def _apply_options(spec: Spec, data: dict[str, Any], options: dict[str, Any]) -> None:
    for name, value in options.items():
        if name not in spec.options:
            raise ScaleError(unknown_message("option", name, spec.options))
        data["options"][name] = {**data["options"][name], "default": value}


def apply_preset(spec: Spec, preset: str) -> Spec:
    """The spec scaled by one of its named presets; option values go into the spec's defaults."""
    presets = spec.scaling.presets
    if not presets:
        raise ScaleError(
            f"unknown scale preset {preset!r}: {spec.name} has no scale presets (its `scaling: "
            "presets:`); scale it with --width, --depth and --resolution"
        )
    if preset not in presets:
        raise ScaleError(unknown_message("scale preset", preset, presets) + f" (in {spec.name})")
    p = presets[preset]
    return scale(spec, width=p.width, depth=p.depth, size=p.resolution, options=p.options)
