"""Graph -> torch.fx.GraphModule: the forward is straight-line generated code, one line per op."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

import networkx as nx
import torch
import torch.nn.functional as F
from torch import fx, nn

from archspec.graph import INPUT, build_graph
from archspec.spec.model import Spec

# Attribute names a node may not take: they would shadow nn.Module / GraphModule members.
_RESERVED = set(dir(fx.GraphModule)) | {"_modules", "_parameters", "_buffers"}


def compile_graph(graph: nx.DiGraph, class_name: str | None = None) -> fx.GraphModule:
    """A GraphModule whose submodules and parameters are named after the graph's nodes."""
    from archspec.errors import GraphError

    code = fx.Graph()
    values: dict[str, fx.Node] = {INPUT: code.placeholder("x")}
    root = nn.Module()
    names: dict[str, str] = {}
    for name in graph.graph["order"]:
        if name == INPUT:
            continue
        data = graph.nodes[name]
        clash = [part for part in name.split(".") if part in _RESERVED]
        if clash:
            raise GraphError(
                f"node {name}: {clash[0]!r} cannot be a layer name (it is a "
                "torch.nn.Module attribute)",
                data["location"],
            )
        shapes = [graph.nodes[i]["shape"] for i in data["inputs"]]
        state = data["op"].build(shapes)
        if state is not None:
            _place(root, name, state)
        node = data["op"].emit(code, [values[i] for i in data["inputs"]], name, shapes)
        values[name] = node
        names[name] = node.name
    outputs = graph.graph["outputs"]
    code.output(values[outputs[0]] if len(outputs) == 1 else tuple(values[o] for o in outputs))
    _in_place(code, root)
    spec: Spec = graph.graph["spec"]
    module = fx.GraphModule(root, code, class_name=class_name or _class_name(spec.name))
    module.meta["archspec_nodes"] = names
    return module


# In-place rewrites where torchvision's hand-written modules use them (`ReLU(inplace=True)`
# after BatchNorm, `out += identity`): the overwritten tensor has no other reader and no
# backward needs it. Saves an allocation per activation and per residual add.
_IN_PLACE = {F.relu6, F.silu, F.hardswish, F.hardsigmoid, F.leaky_relu}
_FRESH_MODULES = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)
_FRESH_FUNCTIONS = {operator.add, operator.iadd, torch.cat}


def _in_place(code: fx.Graph, root: nn.Module) -> None:
    for node in code.nodes:
        if node.op != "call_function" or not node.args:
            continue
        source = node.args[0]
        if not isinstance(source, fx.Node) or len(source.users) != 1:
            continue
        from_module = source.op == "call_module" and isinstance(
            root.get_submodule(source.target), _FRESH_MODULES
        )
        if node.target is operator.add and from_module and node.args[1] is not source:
            node.target = operator.iadd
        elif node.target is torch.relu or node.target in _IN_PLACE:
            if from_module or (source.op == "call_function" and source.target in _FRESH_FUNCTIONS):
                if node.target is torch.relu:
                    node.target = torch.relu_
                else:
                    node.kwargs = {**node.kwargs, "inplace": True}


def _place(root: nn.Module, target: str, state: nn.Module | nn.Parameter) -> None:
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
    else:
        root.add_module(leaf, state)


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) or "Model"


def build(
    spec: Spec | str | Path,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    memory_format: torch.memory_format | None = None,
    **options: Any,
) -> fx.GraphModule:
    """Build a torch module from a spec (path, YAML text or Spec); `options` set spec options
    such as num_classes. `memory_format=torch.channels_last` stores conv weights NHWC."""
    module = compile_graph(build_graph(spec, **options))
    if device is not None or dtype is not None:
        module = module.to(device=device, dtype=dtype)
    if memory_format is not None:
        module = module.to(memory_format=memory_format)
    return module


def node_names(module: nn.Module) -> dict[str, str]:
    """Graph node name -> fx node name in the generated code, for inspection and tests."""
    return dict(getattr(module, "meta", {}).get("archspec_nodes", {}))
