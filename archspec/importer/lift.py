"""The importer's torch.export capture: the model exported with each call of a module that
torch.fx keeps as one call marked (`export`), and the ATen graph lifted back to the
module-level torch.fx graph the importer reads (`lift`): those calls become `call_module` nodes
again, the other ATen ops the torch functions and tensor methods `mapping.py` knows (`ATEN`),
and parameters and buffers are read under the model's own names."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind
from torch.utils import _pytree

aten = torch.ops.aten
_INT64_MAX = 2**63 - 1


def _first_two(target: Any) -> Callable[[fx.Node], tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    """The same call with the ATen-only trailing arguments left off (`_softmax`'s
    half_to_float, `layer_norm`'s cudnn_enable)."""
    return lambda node: (target, tuple(node.args[:2]), {})


def _gelu(node: fx.Node) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    approximate = node.args[1] if len(node.args) > 1 else node.kwargs.get("approximate", "none")
    return F.gelu, (node.args[0],), {} if approximate == "none" else {"approximate": approximate}


def _layer_norm(node: fx.Node) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    return F.layer_norm, tuple(node.args[:5]), {}


def _pad(node: fx.Node) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    value = node.args[2] if len(node.args) > 2 else 0.0
    return F.pad, (node.args[0], node.args[1], "constant", value), {}


def _slice(node: fx.Node) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """x[:, a:b] (`slice(x, dim=1, start=a, end=b)`) as the indexing torch.fx records."""
    source, dim, start, end, step = (*node.args, *(0, None, None, 1)[len(node.args) - 1 :])
    dim %= source.meta["val"].dim()  # type: ignore[union-attr]
    end = None if end is not None and end >= _INT64_MAX else end
    index = (slice(None),) * dim + (slice(start or None, end, None if step == 1 else step),)
    return operator.getitem, (source, index), {}


def _select(node: fx.Node) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """x[:, i] (`select(x, dim=1, index=i)`); x[i] on the first axis."""
    source, dim, index = node.args
    dim %= source.meta["val"].dim()  # type: ignore[union-attr,operator]
    return operator.getitem, (source, index if dim == 0 else (slice(None),) * dim + (index,)), {}


def _einsum(node: fx.Node) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    equation, operands = node.args
    return torch.einsum, (equation, *operands), {}  # type: ignore[misc]


def _index(node: fx.Node) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """table[:, index] (`index(table, [None, index])`) as the indexing torch.fx records."""
    source, indices = node.args
    index = tuple(slice(None) if i is None else i for i in indices)  # type: ignore[union-attr]
    return operator.getitem, (source, index[0] if len(index) == 1 else index), {}


def _same(target: Any) -> Callable[[fx.Node], tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    return lambda node: (target, tuple(node.args), dict(node.kwargs))


def _permute(node: fx.Node) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    source, order = node.args
    return "permute", (source, *order), {}  # type: ignore[misc]


def _method(name: str) -> Callable[[fx.Node], tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    return lambda node: (name, tuple(node.args), dict(node.kwargs))


# ATen op -> (target, args, kwargs) of the call torch.fx records for the same code, the way code
# usually writes it (`x.permute(0, 2, 1)`, a tensor method where a string names the target;
# `torch.relu(x)`). What is not here stays an ATen op, reported by name.
ATEN: dict[Any, Callable[[fx.Node], tuple[Any, tuple[Any, ...], dict[str, Any]]]] = {
    aten.add.Tensor: _same(operator.add),
    aten.sub.Tensor: _same(operator.sub),
    aten.mul.Tensor: _same(operator.mul),
    aten.div.Tensor: _same(operator.truediv),
    aten.add_.Tensor: _method("add_"),
    aten.mul_.Tensor: _method("mul_"),
    aten.matmul.default: _same(torch.matmul),
    aten.bmm.default: _same(torch.bmm),
    aten.einsum.default: _einsum,
    aten.addcmul.default: _same(torch.addcmul),
    aten.relu.default: _same(torch.relu),
    aten.relu_.default: _method("relu_"),
    aten.relu6.default: _same(F.relu6),
    aten.silu.default: _same(F.silu),
    aten.hardswish.default: _same(F.hardswish),
    aten.hardsigmoid.default: _same(F.hardsigmoid),
    aten.sigmoid.default: _same(torch.sigmoid),
    aten.tanh.default: _same(torch.tanh),
    aten.exp.default: _same(torch.exp),
    aten.gelu.default: _gelu,
    aten.softmax.int: _first_two("softmax"),
    aten._softmax.default: _first_two("softmax"),
    aten.view.default: _method("reshape"),
    aten.reshape.default: _method("reshape"),
    aten._unsafe_view.default: _method("reshape"),
    aten.flatten.using_ints: _method("flatten"),
    aten.permute.default: _permute,
    aten.transpose.int: _method("transpose"),
    aten.swapaxes.default: _method("swapaxes"),
    aten.unsqueeze.default: _method("unsqueeze"),
    aten.expand.default: _method("expand"),
    aten.cat.default: _same(torch.cat),
    aten.split.Tensor: _method("split"),
    aten.split_with_sizes.default: _method("split"),
    aten.chunk.default: _method("chunk"),
    aten.unbind.int: _method("unbind"),
    aten.slice.Tensor: _slice,
    aten.select.int: _select,
    aten.index.Tensor: _index,
    aten.mean.dim: _method("mean"),
    aten.adaptive_avg_pool2d.default: _same(F.adaptive_avg_pool2d),
    aten.max_pool2d.default: _same(F.max_pool2d),
    aten.avg_pool2d.default: _same(F.avg_pool2d),
    aten.constant_pad_nd.default: _pad,
    aten.pad.default: _same(F.pad),
    aten.scaled_dot_product_attention.default: _same(F.scaled_dot_product_attention),
    aten.linear.default: _same(F.linear),
    aten.conv2d.default: _same(F.conv2d),
    aten.layer_norm.default: _layer_norm,
}

# ops that hand on their input's value: the node is read as its input
_SAME_VALUE = {
    aten.clone.default,
    aten.alias.default,
    aten.detach.default,
    aten.detach_.default,
    aten.lift_fresh_copy.default,
    aten.contiguous.default,
}


def _same_value(node: fx.Node) -> bool:
    if node.target in _SAME_VALUE:
        return True
    if node.target is aten.dropout.default:  # eval mode: dropout(x, p, train=False)
        return node.args[2] is False
    if str(node.target).startswith("aten.to.") or node.target is aten._to_copy.default:
        source, value = node.args[0], node.meta.get("val")  # x.float() of a float tensor
        before = source.meta.get("val") if isinstance(source, fx.Node) else None
        return (
            isinstance(value, torch.Tensor)
            and isinstance(before, torch.Tensor)
            and (value.dtype, value.device) == (before.dtype, before.device)
        )
    return False


class LiftError(Exception):
    """The exported graph has no module-level form the importer can read."""


class _Tensor:
    """Where a call's arguments held a tensor (the tensor itself is a node of the graph)."""


_TENSOR = _Tensor()


@dataclass(frozen=True)
class Call:
    """One call of a module kept whole, as `export` saw it: its arguments with each tensor
    marked `_TENSOR` (the graph holds the tensors, in this order, as the aliases the call's
    run starts with) and the pytree path of each tensor it handed on (its run ends with their
    aliases, in this order; `()` for a single tensor)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    outputs: list[tuple[Any, ...]]


@dataclass(frozen=True)
class Exported:
    """torch.export's program of a model and the calls of its modules kept whole, keyed as
    nn_module_stack keys them (`act`, `act@1` for its second call)."""

    program: ExportedProgram
    calls: dict[str, Call]


def export(
    model: nn.Module, example: torch.Tensor, whole: Callable[[nn.Module, str], bool]
) -> Exported:
    """`torch.export.export(model, (example,), strict=False)`, sizes fixed at the example's,
    with each module kept whole (`whole(module, name)`) taking its tensors in and handing them
    on through `aten.alias`: every call then leaves ops that say where it starts and ends and
    what it reads, even a module that computes nothing in eval mode (nn.Identity,
    StochasticDepth), which would leave no trace in the graph otherwise."""
    recorder = _Recorder()
    handles = []
    for name, module in model.named_modules():
        if name and whole(module, name):
            enter, leave = partial(recorder.enter, name), partial(recorder.leave, name)
            handles.append(module.register_forward_pre_hook(enter, with_kwargs=True))
            handles.append(module.register_forward_hook(leave, with_kwargs=True))
    try:
        program = torch.export.export(model, (example,), strict=False)
    finally:
        for handle in handles:
            handle.remove()
    return Exported(program, recorder.calls)


class _Recorder:
    """The forward hooks of `export`: each call's arguments and outputs, marked by aliases."""

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self.count: dict[str, int] = {}  # calls so far, per module
        self.current: dict[str, str] = {}  # module -> the key of its call now running

    def enter(self, name: str, module: nn.Module, args: Any, kwargs: Any) -> Any:
        n = self.count.get(name, 0)
        self.count[name] = n + 1
        key = self.current[name] = name if n == 0 else f"{name}@{n}"
        args, kwargs = _pytree.tree_map_only(torch.Tensor, aten.alias.default, (args, kwargs))
        marked = _pytree.tree_map_only(torch.Tensor, lambda _: _TENSOR, (args, kwargs))
        self.calls[key] = Call(marked[0], marked[1], [])
        return args, kwargs

    def leave(self, name: str, module: nn.Module, args: Any, kwargs: Any, output: Any) -> Any:
        key = self.current[name]
        paths = _pytree.tree_flatten_with_path(output)[0]
        outputs = [path for path, value in paths if isinstance(value, torch.Tensor)]
        self.calls[key] = replace(self.calls[key], outputs=outputs)
        return _pytree.tree_map_only(torch.Tensor, aten.alias.default, output)


def lift(exported: Exported, model: nn.Module) -> fx.GraphModule:
    """The module-level graph of the program `export` gave: each run of ATen ops inside one
    call of a module kept whole becomes that module's call, with the arguments it was called
    with; the other ops are mapped through `ATEN`; what the ops read of the model's state is
    read under its own names (the program's placeholders named back)."""
    return _Lifter(exported, model).run()


class _Lifter:
    def __init__(self, exported: Exported, model: nn.Module):
        self.program, self.calls, self.model = exported.program, exported.calls, model
        self.graph = fx.Graph()
        self.new: dict[fx.Node, Any] = {}  # exported node -> its value in the lifted graph
        self.state: dict[str, str] = {}  # placeholder -> the parameter or buffer it stands for
        self.buffers: dict[str, torch.Tensor] = {}  # placeholder -> the buffer it stands for
        self.constants: dict[str, Any] = {}  # node -> a tensor made in forward, or computed
        self.made = 0  # constants read so far: `_tensor_constant0`, ...
        for spec in self.program.graph_signature.input_specs:
            if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER) and spec.target:
                self.state[spec.arg.name] = spec.target
            if spec.kind == InputKind.BUFFER and spec.target:
                self.buffers[spec.arg.name] = model.get_buffer(spec.target)
            elif spec.kind == InputKind.CONSTANT_TENSOR and spec.target:
                self.constants[spec.arg.name] = self.program.constants[spec.target]

    def run(self) -> fx.GraphModule:
        nodes = list(self.program.graph_module.graph.nodes)
        keys = [self._call_key(n) for n in nodes]
        start = 0
        while start < len(nodes):
            node, key = nodes[start], keys[start]
            end = start + 1
            if key is not None:  # the run of ops inside this call
                while end < len(nodes) and keys[end] == key:
                    end += 1
                self._call(nodes[start:end], key)
            elif node.op == "placeholder":
                if node.name not in self.state and node.name not in self.constants:
                    self.new[node] = self.graph.placeholder(node.name)
            elif node.op == "output":
                self._output(node)
            else:
                self._function(node)
            start = end
        self.graph.lint()
        return fx.GraphModule(self._root(), self.graph, type(self.model).__name__)

    def _call_key(self, node: fx.Node) -> str | None:
        """The key of the call of a module kept whole that `node` runs in, if any."""
        if node.op != "call_function":
            return None
        return next((key for key in _fx_stack(node) if key in self.calls), None)

    def _root(self) -> nn.Module:
        """A root holding the model's children and own tensors (shared, not copied) and the
        constants the forward made, for GraphModule to take what the graph reads from."""
        root = nn.Module()
        for name, child in self.model.named_children():
            root.add_module(name, child)
        for name, parameter in self.model.named_parameters(recurse=False):
            root.register_parameter(name, parameter)
        for name, buffer in self.model.named_buffers(recurse=False):
            root.register_buffer(name, buffer)
        for node in self.graph.nodes:
            if "constant" in node.meta:
                root.register_buffer(str(node.target), node.meta.pop("constant"))
        return root

    def _value(self, old: Any, stack: dict[str, Any]) -> Any:
        if not isinstance(old, fx.Node):
            return old
        if old not in self.new:  # the model's state, read where it is first used
            if old.name in self.constants:
                node = self.graph.get_attr(f"_tensor_constant{self.made}")
                self.made += 1
                node.meta["constant"] = self.constants[old.name]
            else:
                node = self.graph.get_attr(self.state[old.name])
            node.meta["nn_module_stack"] = dict(stack)
            self.new[old] = node
        return self.new[old]

    def _values(self, args: Any, stack: dict[str, Any]) -> Any:
        return fx.node.map_aggregate(args, lambda a: self._value(a, stack))

    def _output(self, node: fx.Node) -> None:
        specs = self.program.graph_signature.output_specs
        outputs = [
            arg
            for arg, spec in zip(node.args[0], specs, strict=True)
            if spec.kind == OutputKind.USER_OUTPUT
        ]  # not the buffers the forward updates
        structured = _pytree.tree_unflatten(outputs, self.program.call_spec.out_spec)
        self.graph.output(self._values(structured, {}))

    def _function(self, node: fx.Node) -> None:
        stack = _fx_stack(node)
        if self._fold(node):
            return
        if _same_value(node):
            self.new[node] = self._values(node.args[0], stack)
            return
        mapped = ATEN.get(node.target)
        target, args, kwargs = mapped(node) if mapped else (node.target, node.args, node.kwargs)
        kind = "call_method" if isinstance(target, str) else "call_function"
        args, kwargs = self._values(args, stack), self._values(kwargs, stack)
        created = self.graph.create_node(kind, target, args, kwargs, name=node.name)
        created.meta["nn_module_stack"] = stack
        self.new[node] = created

    def _fold(self, node: fx.Node) -> bool:
        """torch.fx reads a buffer as the tensor it is, not a proxy (its tracer's
        `proxy_buffer_attributes` is False), so what the forward computes from buffers and
        constants alone is a constant in its graph (MaxViT's `relative_position_index.view(-1)`,
        a table lookup's index): the same here, computed from the model's buffers."""
        known = {**self.buffers, **self.constants}
        if not all(n.name in known for n in node.all_input_nodes):
            return False
        args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda n: known[n.name])
        with torch.no_grad():
            self.constants[node.name] = node.target(*args, **kwargs)  # type: ignore[operator]
        return True

    def _call(self, run: list[fx.Node], key: str) -> None:
        """One `call_module` node for the run of ATen ops of one module call, called with the
        arguments `export` recorded: the tensors are what the aliases the run starts with
        read. The aliases it ends with are its outputs."""
        call = self.calls[key]
        stack = _fx_stack(run[0])
        stack = dict(list(stack.items())[: list(stack).index(key) + 1])
        path = stack[key][0]
        inputs = _pytree.tree_leaves((call.args, call.kwargs)).count(_TENSOR)
        first, last = run[:inputs], run[len(run) - len(call.outputs) :]
        if any(n.target is not aten.alias.default for n in first + last):
            raise LiftError(f"the call of {key} does not start and end as export marked it")
        sources = iter(self._values([n.args[0] for n in first], stack))
        args, kwargs = _pytree.tree_map(
            lambda leaf: next(sources) if leaf is _TENSOR else leaf, (call.args, call.kwargs)
        )
        node = self.graph.call_module(path, tuple(args), dict(kwargs))
        node.meta["nn_module_stack"] = stack
        outside = dict(list(stack.items())[:-1])
        for where, alias in zip(call.outputs, last, strict=True):
            value = node
            for step in where:  # `(out, weights)[0]`: the output's part
                if not isinstance(step, (_pytree.SequenceKey, _pytree.MappingKey)):
                    raise LiftError(f"{key} hands on {type(step).__name__} parts")
                index = step.idx if isinstance(step, _pytree.SequenceKey) else step.key
                value = self.graph.call_function(operator.getitem, (value, index))
                value.meta["nn_module_stack"] = outside
            self.new[alias] = value


def _fx_stack(node: fx.Node) -> dict[str, tuple[str, Any]]:
    """torch.export's nn_module_stack (`{"L__self__layer1.0": ("layer1.0", "...Bottleneck")}`,
    the root first) as torch.fx writes it: keyed by the qualified name, `act@1` for a second
    call, without the root."""
    out: dict[str, tuple[str, Any]] = {}
    for key, (path, kind) in (node.meta.get("nn_module_stack") or {}).items():
        if not path:
            continue
        again = re.search(r"@\d+$", key)
        out[path + (again.group() if again else "")] = (path, kind)
    return out
