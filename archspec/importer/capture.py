"""What `archspec import` reads: a model named by a SOURCE string, traced into a torch.fx graph
with every tensor's shape recorded (torch.fx, with timm's leaf modules when timm is installed;
a model whose forward branches on tensor values cannot be traced and is refused in one line)."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from archspec.errors import ArchspecError


class ImportSourceError(ArchspecError):
    """A model could not be imported: a bad source, a failed trace, unmapped parts, a mismatch."""


def load_source(source: str, kwargs: dict[str, Any] | None = None) -> tuple[nn.Module, str]:
    """`torchvision:NAME`, `timm:NAME` or `package.module:callable` -> (module in eval mode,
    a short name). Weights are never downloaded (weights=None, pretrained=False)."""
    kwargs = dict(kwargs or {})
    kind, sep, name = source.partition(":")
    if not sep or not name:
        raise ImportSourceError(
            f"source {source!r}: expected torchvision:NAME, timm:NAME or package.module:callable"
        )
    try:
        if kind == "torchvision":
            import torchvision

            kwargs.setdefault("weights", None)
            model = torchvision.models.get_model(name, **kwargs)
        elif kind == "timm":
            try:
                import timm
            except ImportError as exc:
                raise ImportSourceError(
                    "timm: not installed (pip install 'archspec[timm]')"
                ) from exc
            kwargs.setdefault("pretrained", False)
            model = timm.create_model(name, **kwargs)
        else:
            if not re.fullmatch(r"[\w.]+", kind) or not re.fullmatch(r"[\w.]+", name):
                raise ImportSourceError(f"source {source!r}: expected package.module:callable")
            target: Any = importlib.import_module(kind)
            for part in name.split("."):
                target = getattr(target, part)
            model = target(**kwargs)
    except ArchspecError:
        raise
    except (ImportError, AttributeError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise ImportSourceError(f"source {source}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ImportSourceError(f"source {source}: returned {type(model).__name__}, not a module")
    return model.eval(), name.rsplit(".", 1)[-1]


def parse_kwargs(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportSourceError(f"--kwargs: not JSON ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise ImportSourceError("--kwargs: expected a JSON object such as '{\"num_classes\": 10}'")
    return value


def leaf_types(through: bool = False) -> tuple[type, ...]:
    """Module classes traced as one call (beyond torch.nn's): timm's leaf list and the
    non-torch.nn classes the importer maps directly. `through`: only the timm leaves that the
    importer maps; the others are traced through (NF-Net's NormFreeBlock)."""
    from archspec.importer.mapping import MODULES, op_importing

    leaves = {cls for cls in MODULES if not cls.__module__.startswith("torch.nn")}
    try:
        from timm.layers import _fx as timm_fx

        timm_leaves = set(getattr(timm_fx, "_leaf_modules", ()))
        if through:
            timm_leaves = {c for c in timm_leaves if c in MODULES or op_importing(c) is not None}
        leaves |= timm_leaves
    except ImportError:
        pass
    return tuple(leaves)


class _Tracer(fx.Tracer):
    def __init__(self, leaves: Sequence[type]):
        super().__init__()
        self.leaves = tuple(leaves)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        from archspec.importer.mapping import op_importing

        if isinstance(m, self.leaves) or op_importing(type(m)) is not None:
            return True
        return super().is_leaf_module(m, qualname)


def _autowrap() -> tuple[Any, ...]:
    try:
        from timm.layers import _fx as timm_fx

        return tuple(getattr(timm_fx, "_autowrap_functions", ()))
    except ImportError:
        return ()


def _in_place(node: fx.Node) -> bool:
    name = getattr(node.target, "__name__", str(node.target))
    return name.endswith("_") or name.startswith("__i") or name.startswith("i")


def _drop_unused(graph: fx.Graph) -> None:
    """Remove what the forward computes and never uses (DLA's unused downsample): a spec has
    no dead ends. In-place calls stay; they act through their input."""
    changed = True
    while changed:
        changed = False
        for node in reversed(graph.nodes):
            if node.users or node.op in ("placeholder", "output") or _in_place(node):
                continue
            graph.erase_node(node)
            changed = True


class _MethodCall(nn.Module):
    """Stands in the traced module for a child whose node is really its parent's method call
    (mapping.METHOD_CALLS), so that shape propagation runs the method."""

    def __init__(self, caller: nn.Module, method: str):
        super().__init__()
        self.run = getattr(type(caller), method).__get__(caller)

    def forward(self, *args: Any) -> Any:
        return self.run(*args)


@contextmanager
def _methods_as_calls(model: nn.Module) -> Iterator[list[tuple[str, nn.Module]]]:
    """While tracing, each METHOD_CALLS method calls its child instead (an instance attribute
    shadows the method), so the tracer records one leaf call under the child's name."""
    from archspec.importer.mapping import METHOD_CALLS

    patched = [(n, m) for n, m in model.named_modules() if type(m) in METHOD_CALLS]
    for _, m in patched:
        method, child = METHOD_CALLS[type(m)]
        m.__dict__[method] = getattr(m, child)
    try:
        yield patched
    finally:
        for _, m in patched:
            m.__dict__.pop(METHOD_CALLS[type(m)][0], None)


def trace(model: nn.Module, example: torch.Tensor) -> fx.GraphModule:
    """The model as an fx graph, each node's output shape in `meta["tensor_meta"]`. timm's
    leaf modules that the importer cannot map are traced through; where that trace fails
    (a forward that branches on sizes), they stay single calls, which the importer reports."""
    try:
        return _trace(model, example, leaf_types(through=True))
    except ImportSourceError:
        if set(leaf_types(through=True)) == set(leaf_types()):
            raise
        return _trace(model, example, leaf_types())


def _trace(model: nn.Module, example: torch.Tensor, leaves: tuple[type, ...]) -> fx.GraphModule:
    from archspec.importer.mapping import METHOD_CALLS

    tracer = _Tracer(leaves)
    tracer._autowrap_function_ids = {id(f) for f in _autowrap()} | getattr(
        tracer, "_autowrap_function_ids", set()
    )
    import inspect

    # optional forward arguments (timm's attn_mask=None) are fixed at their defaults
    parameters = list(inspect.signature(model.forward).parameters.values())[1:]
    concrete = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    with _methods_as_calls(model) as patched:
        try:
            graph = tracer.trace(model, concrete_args=concrete or None)
        except Exception as exc:
            raise ImportSourceError(
                f"torch.fx cannot trace {type(model).__name__}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else ''}"
            ) from exc
    _drop_unused(graph)
    module = fx.GraphModule(tracer.root, graph, type(model).__name__)
    for name, caller in patched:
        method, child = METHOD_CALLS[type(caller)]
        target = f"{name}.{child}" if name else child
        for node in graph.nodes:
            if node.op == "call_module" and node.target == target:
                node.meta["caller"] = caller
                module.get_submodule(name).add_module(child, _MethodCall(caller, method))
    with torch.no_grad():
        ShapeProp(module).propagate(example)
    return module
