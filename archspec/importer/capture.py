"""What `archspec import` reads: a model named by a SOURCE string, captured as a module-level
torch.fx graph (timm's leaf modules when timm is installed) with every tensor's shape recorded on
fake tensors (a real run only where fake tensors cannot run the model). Three tries, each only
where the one before fails: torch.fx; torch.fx with the example's sizes answered while tracing
(a forward that branches or loops on sizes); torch.export, lifted back to module calls
(`lift.py`; a forward no proxy gets through: `isinstance(x, torch.Tensor)`, `list(x)`). One that
branches on tensor values is refused in one line, at the line that branches."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import logging
import operator
import os
import re
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.passes.shape_prop import _extract_tensor_metadata

from archspec.errors import ArchspecError
from archspec.importer.lift import LiftError, export, lift


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


def target_name(node: fx.Node) -> str:
    """The called function's or method's name (`getitem` for indexing)."""
    target = node.target
    if target is operator.getitem:
        return "getitem"
    return getattr(target, "__name__", str(target))


_IN_PLACE_OPERATORS = {
    operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
    operator.imod, operator.ipow, operator.imatmul, operator.iand, operator.ior, operator.ixor,
    operator.ilshift, operator.irshift,
}  # fmt: skip


def in_place(node: fx.Node, modules: dict[str, object]) -> bool:
    """Whether `node` may overwrite one of its inputs (`relu_`, `x += y`, ReLU(inplace=True))."""
    if node.op == "call_module":
        return bool(getattr(modules.get(str(node.target)), "inplace", False))
    if node.op not in ("call_function", "call_method"):
        return False
    name = target_name(node)
    return (
        node.kwargs.get("inplace") is True
        or node.target in _IN_PLACE_OPERATORS
        or name.startswith("__i")
        or (name.endswith("_") and not name.startswith("__"))
    )


def _drop_unused(graph: fx.Graph, root: nn.Module) -> None:
    """Remove what the forward computes and never uses (DLA's unused downsample): a spec has
    no dead ends. In-place calls stay; they act through their input."""
    modules = dict(root.named_modules())
    changed = True
    while changed:
        changed = False
        for node in reversed(graph.nodes):
            if node.users or node.op in ("placeholder", "output") or in_place(node, modules):
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


@dataclass(frozen=True)
class Captured:
    """A traced model: its module-level fx graph, every tensor's shape in `meta["tensor_meta"]`,
    and, where it was not a plain torch.fx trace, a line saying how it was captured (for the
    spec's header: sizes fixed while tracing, torch.export)."""

    graph: fx.GraphModule
    how: str = ""


def trace(model: nn.Module, example: torch.Tensor) -> Captured:
    """The model as an fx graph. timm's leaf modules that the importer cannot map are traced
    through; where torch.fx cannot trace that (a forward that branches or loops on sizes), it
    is traced again with the sizes of `example` answered while tracing (`_SizedTracer`), and
    only then are those leaves kept as single calls, which the importer reports. Where no
    torch.fx trace gets through the forward, torch.export captures it (`_export`)."""
    through, kept = leaf_types(through=True), leaf_types()
    attempts = [(through, False), (through, True)]
    if set(through) != set(kept):
        attempts.append((kept, False))
    failures: list[ImportSourceError] = []
    for leaves, sized in attempts:
        try:
            graph = _trace(model, example, leaves, sized)
        except ImportSourceError as exc:
            failures.append(exc)
            continue
        how = ""
        if sized:
            how = (
                f"captured by torch.fx, sizes fixed at the input {_size(example)} while "
                "tracing (the forward branches or loops on them)"
            )
        return Captured(graph, how)
    return _export(model, example, through, failures[1])


def _size(example: torch.Tensor) -> str:
    return "x".join(map(str, example.shape[1:]))


def _trace(
    model: nn.Module, example: torch.Tensor, leaves: tuple[type, ...], sized: bool
) -> fx.GraphModule:
    from archspec.importer.mapping import METHOD_CALLS

    tracer = _SizedTracer(leaves, example) if sized else _Tracer(leaves)
    tracer._autowrap_function_ids = {id(f) for f in _autowrap()} | getattr(
        tracer, "_autowrap_function_ids", set()
    )
    # optional forward arguments (timm's attn_mask=None) are fixed at their defaults
    parameters = list(inspect.signature(model.forward).parameters.values())[1:]
    concrete = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    with _methods_as_calls(model) as patched:
        try:
            graph = tracer.trace(model, concrete_args=concrete or None)
        except Exception as exc:
            raise ImportSourceError(_untraceable(model, exc, sized)) from exc
    _drop_unused(graph, tracer.root)
    module = fx.GraphModule(tracer.root, graph, type(model).__name__)
    for name, caller in patched:
        method, child = METHOD_CALLS[type(caller)]
        target = f"{name}.{child}" if name else child
        for node in graph.nodes:
            if node.op == "call_module" and node.target == target:
                node.meta["caller"] = caller
                module.get_submodule(name).add_module(child, _MethodCall(caller, method))
    _record(module, model, example, "traced")
    return module


def _record(module: fx.GraphModule, model: nn.Module, example: torch.Tensor, how: str) -> None:
    try:
        record_shapes(module, example)
    except Exception as exc:
        raise ImportSourceError(
            f"the {how} graph of {type(model).__name__} does not run: {type(exc).__name__}: "
            f"{first_line(exc)}"
        ) from exc


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, at most `limit` characters ("" if none)."""
    return str(exc).splitlines()[0][:limit] if str(exc) else ""


def _export(
    model: nn.Module, example: torch.Tensor, leaves: tuple[type, ...], untraceable: Exception
) -> Captured:
    """torch.export's capture, where no torch.fx trace gets through the forward (`if not
    isinstance(x, torch.Tensor): raise`, `list(x)`: a proxy is no tensor and cannot be
    iterated). Non-strict export runs the model's own Python on fake tensors, at the sizes of
    `example`. Where torch.export fails too (a branch on tensor values), the sized trace's
    reason is raised: it names the line."""
    try:
        with _quiet():
            exported = export(model, example, _Tracer(leaves).is_leaf_module)
    except Exception:  # whatever stops it, the sized trace said where torch.fx stopped first
        raise untraceable from untraceable.__cause__
    try:  # the modules a torch.fx trace keeps as single calls are single calls again
        graph = lift(exported, model)
    except LiftError as exc:
        raise ImportSourceError(
            f"torch.fx cannot trace {type(model).__name__}, and its torch.export graph has no "
            f"module-level form: {exc}"
        ) from exc
    _drop_unused(graph.graph, graph)
    graph.recompile()
    _record(graph, model, example, "exported")
    cause = untraceable.__cause__ or untraceable
    message = first_line(cause).split(". ")[0][:120]  # TraceError's first sentence
    why = f"{type(cause).__name__}{': ' if message else ''}{message}{_where(cause)}"
    how = (
        f"captured by torch.export, sizes fixed at the input {_size(example)} (torch.fx cannot "
        f"trace the forward: {why})"
    )
    return Captured(graph, how)


@contextmanager
def _quiet() -> Iterator[None]:
    """torch.export's own reports kept off the terminal (the partial graph it prints to stderr
    and the warnings it logs when it fails): the importer says what failed in one line."""
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(disabled)


def _untraceable(model: nn.Module, exc: Exception, sized: bool) -> str:
    """One line: why torch.fx stopped, at the line of the model's own code where it did (a
    branch in a sized trace reads tensor values: sizes are numbers there)."""
    where = _where(exc)
    name = type(model).__name__
    if isinstance(exc, fx.proxy.TraceError) and "control flow" in str(exc):
        return (
            f"torch.fx cannot trace {name}: its forward branches on tensor values{where}; a spec "
            "has one data flow for every input, so this model cannot be imported"
            if sized
            else f"torch.fx cannot trace {name}: its forward branches on tensor sizes or "
            f"values{where}"
        )
    return f"torch.fx cannot trace {name}: {type(exc).__name__}: {first_line(exc)}{where}"


def _where(exc: BaseException) -> str:
    """` at path:line (`code`)`: the innermost frame of the model's own code in the traceback."""
    torch_dir = os.path.dirname(torch.__file__)
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if not frame.filename.startswith(torch_dir) and frame.filename != __file__:
            path = frame.filename
            if path.startswith(os.getcwd() + os.sep):
                path = os.path.relpath(path)
            return f" at {path}:{frame.lineno} (`{(frame.line or '').strip()}`)"
    return ""


def record_shapes(module: fx.GraphModule, example: torch.Tensor, fake: bool = True) -> None:
    """Every node's output shape into `meta["tensor_meta"]`, computed on fake tensors (shapes
    only, no arithmetic, the real weights never read); a model whose forward fake tensors
    cannot run (an op without a shape rule, a real tensor mutated) is run for real instead."""
    if fake:
        mode = FakeTensorMode(allow_non_fake_inputs=True)
        try:
            with mode, torch.no_grad():
                _ShapeRecorder(module).run(mode.from_tensor(example))
            return
        except Exception:  # fake tensors cannot run it: the real run below decides
            pass
    with torch.no_grad():
        _ShapeRecorder(module).run(example)


class _ShapeRecorder(fx.Interpreter):
    """torch.fx's ShapeProp without its copy of the module (fake tensors come from the real
    weights as each op reads them) and without printing a traceback when a run fails."""

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        found = False

        def metadata(value: Any) -> Any:
            nonlocal found
            if isinstance(value, torch.Tensor):
                found = True
                return _extract_tensor_metadata(value)
            return value

        recorded = fx.node.map_aggregate(result, metadata)
        if found:
            n.meta["tensor_meta"] = recorded
        return result


class _SizedProxy(fx.Proxy):
    """A proxy that answers `.shape`, `.size()`, `.dim()`, `.numel()`, `.dtype`, `.device`,
    `len()` and iteration with the values its tracer computed for it, so that a forward's
    branches and loops on sizes are settled while tracing (the graph holds them as constants);
    on fake tensors, any other metadata too (`x.is_contiguous()`, `x.stride()`, `x.is_cuda`)."""

    tracer: _SizedTracer

    @property
    def _value(self) -> Any:
        return self.tracer._value(self.node)

    @property
    def shape(self) -> torch.Size:
        return self._value.shape

    @property
    def ndim(self) -> int:
        return self._value.dim()

    @property
    def dtype(self) -> torch.dtype:
        return self._value.dtype

    @property
    def device(self) -> torch.device:
        return self._value.device

    def size(self, dim: int | None = None) -> Any:
        return self._value.size() if dim is None else self._value.size(dim)

    def dim(self) -> int:
        return self._value.dim()

    def numel(self) -> int:
        return self._value.numel()

    def __len__(self) -> int:
        return len(self._value)

    def __iter__(self) -> Iterator[fx.Proxy]:
        if isinstance(self._value, (tuple, list)):
            return iter([self[i] for i in range(len(self._value))])
        return super().__iter__()

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and name not in ("tracer", "node") and self.tracer.mode:
            value = getattr(self._value, name, None)
            if _metadata(value):  # `x.is_cuda`, `x.layout`: answered like the sizes
                return value
        return super().__getattr__(name)


def _metadata(value: Any) -> bool:
    """A plain value computed from fake tensors: it can only come from their metadata (sizes,
    strides, dtype, device, contiguity), never from their data, which they do not have."""
    scalars = (bool, int, float, str, torch.dtype, torch.device, torch.layout, torch.memory_format)
    if isinstance(value, tuple):
        return all(isinstance(v, int) for v in value)
    return isinstance(value, scalars)


class _SizedTracer(_Tracer):
    """torch.fx's tracer that also runs each node as it records it (on fake tensors, or for
    real where fake tensors cannot run the model), keeping the values for `_SizedProxy`.

    Why this before torch.export: it records the module-level graph that `mapping.py` reads,
    with the same module names and where each parameter is read, as plain torch.fx does, so a
    model that plain torch.fx traced but for a size gets the spec torch.fx would give.
    torch.export records ATen ops, which `lift.py` maps back to modules and torch functions
    (`lift.ATEN`); it is tried last, for forwards that no proxy gets through. Both settle a
    branch on sizes at the example's sizes; neither can capture a branch on values."""

    def __init__(self, leaves: Sequence[type], example: torch.Tensor):
        super().__init__(leaves)
        self.example = example
        self.values: dict[fx.Node, Any] = {}
        self.running = False
        self.mode: FakeTensorMode | None = FakeTensorMode(allow_non_fake_inputs=True)

    def trace(self, root: Any, concrete_args: dict[str, Any] | None = None) -> fx.Graph:
        try:
            return super().trace(root, concrete_args)
        except _FakeFailed:
            self.mode, self.values = None, {}  # once more, running the ops for real
            return super().trace(root, concrete_args)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _SizedProxy(node, self)

    def create_proxy(self, kind: str, target: Any, args: Any, kwargs: Any, *rest: Any,
                     **more: Any) -> fx.Proxy:  # fmt: skip
        proxy = super().create_proxy(kind, target, args, kwargs, *rest, **more)
        value = self.values[proxy.node] = self._run(proxy.node)
        if self.mode and kind in ("call_method", "call_function") and _metadata(value):
            # `x.is_contiguous()`, `x.stride()`: metadata, a constant like the sizes
            self.graph.erase_node(proxy.node)
            return value  # type: ignore[no-any-return]
        return proxy

    def _run(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            if not any(n.op == "placeholder" for n in self.values):
                return self.mode.from_tensor(self.example) if self.mode else self.example
            return node.args[0] if node.args else None
        args, kwargs = fx.node.map_arg((node.args, node.kwargs), self._value)
        self.running = True  # what runs now is not recorded
        try:
            with self.mode or contextlib.nullcontext(), torch.no_grad():
                if node.op == "get_attr":
                    return self._attribute(node)
                if node.op == "call_module":
                    return self._callable(str(node.target))(*args, **kwargs)
                if node.op == "call_method":
                    return getattr(args[0], str(node.target))(*args[1:], **kwargs)
                return node.target(*args, **kwargs)  # type: ignore[operator]
        except Exception as exc:
            if self.mode is not None:
                raise _FakeFailed() from exc
            raise
        finally:
            self.running = False

    def _value(self, node: fx.Node) -> Any:
        if node not in self.values:  # a tensor torch.fx made a constant (`create_node` directly)
            self.running = True
            try:
                self.values[node] = self._attribute(node)
            finally:
                self.running = False
        return self.values[node]

    def _callable(self, target: str) -> Any:
        """The module at `target`, or the method of its parent it stands for (METHOD_CALLS)."""
        from archspec.importer.mapping import METHOD_CALLS

        parent_name, _, child = target.rpartition(".")
        parent = self.root.get_submodule(parent_name)
        method, stand_in = METHOD_CALLS.get(type(parent), ("", ""))
        if stand_in == child:
            return getattr(type(parent), method).__get__(parent)
        return self.root.get_submodule(target)

    def _attribute(self, node: fx.Node) -> Any:
        value: Any = self.root
        for part in str(node.target).split("."):
            value = getattr(value, part)
        return value

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        if self.running:  # computing a value: the module runs as it is, nothing recorded
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        if self.running:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


class _FakeFailed(Exception):
    """Fake tensors could not run a node: the sized trace starts again with real tensors."""
