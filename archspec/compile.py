"""Graph -> torch.fx.GraphModule: the forward is straight-line generated code, one line per op."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import fx, nn

from archspec.graph import INPUT, ArchGraph, Node, build_graph
from archspec.spec.model import Spec

# Attribute names a node may not take: they would shadow nn.Module / GraphModule members.
_RESERVED = set(dir(fx.GraphModule)) | {"_modules", "_parameters", "_buffers"}

Returns = Literal["auto", "dict", "list"]


def compile_graph(
    graph: ArchGraph, class_name: str | None = None, returns: Returns = "auto"
) -> fx.GraphModule:
    """A GraphModule whose submodules and parameters are named after the graph's nodes.
    It returns one tensor, or a tuple for several outputs (`auto`); a dict keyed by the
    names the outputs were asked by (`dict`); or a list (`list`, timm's features_only)."""
    from archspec.errors import GraphError

    code = fx.Graph()
    values: dict[str, fx.Node] = {INPUT: code.placeholder("x")}
    root = nn.Module()
    names: dict[str, str] = {}
    for node in graph:
        clash = [part for part in node.name.split(".") if part in _RESERVED]
        if clash:
            raise GraphError(
                f"node {node.name}: {clash[0]!r} cannot be a layer name (it is a "
                "torch.nn.Module attribute)",
                node.location,
            )
        shapes = list(node.input_shapes)
        state = node.op.build(shapes)
        if state is not None:
            _place(root, node.name, state, node.op.saves_buffer())
        args = [values[i] for i in node.inputs]
        if _may_overwrite(graph, node):
            value = node.op.emit_in_place(code, args, node.name, shapes)
        else:
            value = node.op.emit(code, args, node.name, shapes)
        values[node.name] = value
        names[node.name] = value.name
    results = [values[o] for o in graph.outputs]
    if returns == "dict":
        code.output(dict(zip(graph.output_names, results, strict=True)))
    elif returns == "list":
        code.output(results)
    else:
        code.output(results[0] if len(results) == 1 else tuple(results))
    module = fx.GraphModule(root, code, class_name=class_name or _class_name(graph.spec.name))
    module.meta["archspec_nodes"] = names
    return module


def _may_overwrite(graph: ArchGraph, node: Node) -> bool:
    """An in_place op overwrites its first input when nothing else reads that tensor and no
    backward needs it (it comes from an overwritable op: conv, batchnorm, linear, add...)."""
    if not node.op.in_place:
        return False
    source = node.inputs[0]
    return (
        source != INPUT
        and graph[source].op.overwritable
        and graph.users(source) == [node.name]
        and node.inputs.count(source) == 1
        and source not in graph.outputs
    )


def _place(
    root: nn.Module, target: str, state: nn.Module | torch.Tensor, persistent: bool = True
) -> None:
    """Put `state` at dotted `target`, creating containers on the way, in graph order (so
    state_dict order follows the forward, as in hand-written modules)."""
    *path, leaf = target.split(".")
    for part in path:
        child = getattr(root, part, None)
        if child is None:
            child = nn.Module()
            root.add_module(part, child)
        root = child
    if isinstance(state, nn.Parameter):
        root.register_parameter(leaf, state)
    elif isinstance(state, torch.Tensor):  # a buffer (a constant table, an index)
        root.register_buffer(leaf, state, persistent=persistent)
    else:
        root.add_module(leaf, state)


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) or "Model"


def build(
    spec: Spec | str | Path,
    *,
    outputs: Sequence[str] | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    memory_format: torch.memory_format | None = None,
    **options: Any,
) -> fx.GraphModule:
    """Build a torch module from a spec (path, YAML text or Spec); `options` set spec options
    such as num_classes. `memory_format=torch.channels_last` stores conv weights NHWC.

    Backbones: `outputs=["layer2", "layer4"]` returns a dict of those layers' outputs,
    `features_only=True` a list of the feature maps (one per reduction, timm's rule;
    `out_indices` picks some); what does not feed them (the head) is left out, and
    `module.feature_info` gives each output's channels and reduction."""
    from archspec.errors import GraphError
    from archspec.graph.features import feature_info, features_graph

    graph = build_graph(spec, **options)
    returns: Returns = "auto"
    if out_indices is not None and not features_only:
        raise GraphError("out_indices picks feature maps: pass features_only=True too")
    if features_only and outputs is not None:
        raise GraphError("give outputs or features_only, not both")
    if features_only:
        graph, returns = features_graph(graph, out_indices), "list"
    elif outputs is not None:
        graph, returns = graph.with_outputs(outputs), "dict"
    module = compile_graph(graph, returns=returns)
    if returns != "auto":
        module.feature_info = feature_info(graph)
    if device is not None or dtype is not None:
        module = module.to(device=device, dtype=dtype)
    if memory_format is not None:
        module = module.to(memory_format=memory_format)
    return module


def node_names(module: nn.Module) -> dict[str, str]:
    """Graph node name -> fx node name in the generated code, for inspection and tests."""
    return dict(getattr(module, "meta", {}).get("archspec_nodes", {}))
