"""One table from torch to archspec ops: module classes (`MODULES`) and functions or tensor
methods (`FUNCTIONS`), each mapped to an op item `{op: ..., fields}` and the tensors it reads.
A node nothing here maps is reported, with its count and first place, by the importer."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn


class Unmapped(Exception):
    """This node (or this use of it) has no op; `what` names it for the error listing."""

    def __init__(self, what: str, why: str = ""):
        super().__init__(what)
        self.what, self.why = what, why


@dataclass
class Mapped:
    """An op item (None: `alias` or nothing), the fx nodes it reads, or the node it stands for."""

    item: dict[str, Any] | list[dict[str, Any]] | None = None  # a list: ops in a chain
    inputs: list[fx.Node] = field(default_factory=list)
    alias: fx.Node | None = None
    part: int | None = None  # the alias is part `part` of a chunk or split
    extra: list[list[fx.Node]] = field(default_factory=list)  # chain step k+1's other inputs
    name: str | None = None  # the op holds state under this name (a buffer folded into it)


def tensor_args(node: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) or n)
    return [n for n in found if is_tensor(n)]


def is_tensor(node: fx.Node) -> bool:
    return isinstance(node.meta.get("tensor_meta"), torch.fx.passes.shape_prop.TensorMetadata)


def dims(node: fx.Node) -> tuple[int, ...]:
    """The node's output shape after the batch axis."""
    return tuple(node.meta["tensor_meta"].shape[1:])


def _pair(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return value[0] if len(set(value)) == 1 else list(value)
    return value


def _put(item: dict[str, Any], name: str, value: Any, default: Any) -> None:
    if value != default:
        item[name] = value


# --- modules ------------------------------------------------------------------------------


def _conv(m: nn.Conv2d, node: fx.Node) -> dict[str, Any]:
    if isinstance(m.padding, str) and m.padding != "valid":
        padding: Any = m.padding
    else:
        padding = 0 if m.padding == "valid" else _pair(m.padding)
    item: dict[str, Any] = {"op": "conv2d", "out_channels": m.out_channels}
    item["kernel_size"] = _pair(m.kernel_size)
    _put(item, "stride", _pair(m.stride), 1)
    _put(item, "padding", padding, 0)
    _put(item, "dilation", _pair(m.dilation), 1)
    if m.groups > 1:
        depthwise = m.groups == m.in_channels == m.out_channels
        item["groups"] = "depthwise" if depthwise else m.groups
    _put(item, "bias", m.bias is not None, True)
    _put(item, "padding_mode", m.padding_mode, "zeros")
    return item


def _conv_tf_same(m: nn.Conv2d, node: fx.Node) -> dict[str, Any]:
    """timm's Conv2dSame: TensorFlow's SAME padding, worked out from the input size."""
    if _pair(m.padding) != 0 or m.padding_mode != "zeros":
        raise Unmapped(f"module {type(m).__name__} with its own padding")
    item = _conv(m, node)
    at = list(item).index("stride" if "stride" in item else "kernel_size") + 1
    pairs = list(item.items())
    return dict([*pairs[:at], ("padding", "tf_same"), *pairs[at:]])


def _std_conv(m: Any, node: fx.Node) -> dict[str, Any]:
    """timm's StdConv2d(Same): std_conv2d (BiT's weight-standardized convolution)."""
    item = _conv_tf_same(m, node) if getattr(m, "same_pad", False) else _conv(m, node)
    item["op"] = "std_conv2d"
    _put(item, "eps", m.eps, 1e-6)
    return item


def _scaled_std_conv(m: Any, node: fx.Node) -> dict[str, Any]:
    """timm's ScaledStdConv2d(Same): scaled_std_conv2d, gamma read back from its scale."""
    item = _conv_tf_same(m, node) if getattr(m, "same_pad", False) else _conv(m, node)
    item["op"] = "scaled_std_conv2d"
    gamma = m.scale * m.weight[0].numel() ** 0.5
    _put(item, "gamma", round(gamma, 12), 1.0)
    _put(item, "eps", m.eps, 1e-6)
    _put(item, "gain_init", m.gain_init, 1.0)
    return item


def _batchnorm(m: nn.BatchNorm2d, node: fx.Node) -> dict[str, Any]:
    if not m.track_running_stats:
        raise Unmapped(f"module {type(m).__name__} without running stats")
    item: dict[str, Any] = {"op": "batchnorm"}
    _put(item, "eps", m.eps, 1e-5)
    _put(item, "momentum", m.momentum, 0.1)
    _put(item, "affine", m.affine, True)
    return item


def _layernorm(m: nn.LayerNorm, node: fx.Node) -> dict[str, Any]:
    if len(m.normalized_shape) != 1 or getattr(m, "bias", True) is None:
        raise Unmapped(f"module {type(m).__name__} over several axes or without bias")
    item: dict[str, Any] = {"op": "layernorm"}
    _put(item, "eps", m.eps, 1e-5)
    _put(item, "elementwise_affine", m.elementwise_affine, True)
    return item


def _linear(m: nn.Linear, node: fx.Node) -> dict[str, Any]:
    item: dict[str, Any] = {"op": "linear", "out_features": m.out_features}
    _put(item, "bias", m.bias is not None, True)
    return item


def _pool(op: str) -> Callable[[nn.Module, fx.Node], dict[str, Any]]:
    def mapped(m: Any, node: fx.Node) -> dict[str, Any]:
        if getattr(m, "dilation", 1) not in (1, (1, 1)) or getattr(m, "return_indices", False):
            raise Unmapped(f"module {type(m).__name__} with dilation or indices")
        if getattr(m, "divisor_override", None) is not None:
            raise Unmapped(f"module {type(m).__name__} with divisor_override")
        item: dict[str, Any] = {"op": op, "kernel_size": _pair(m.kernel_size)}
        stride = _pair(m.stride) if m.stride is not None else item["kernel_size"]
        _put(item, "stride", stride, item["kernel_size"])
        _put(item, "padding", _pair(m.padding), 0)
        _put(item, "ceil_mode", m.ceil_mode, False)
        if op == "avgpool":
            _put(item, "count_include_pad", m.count_include_pad, True)
        return item

    return mapped


def _adaptive_avgpool(m: nn.AdaptiveAvgPool2d, node: fx.Node) -> dict[str, Any]:
    item: dict[str, Any] = {"op": "adaptive_avgpool"}
    _put(item, "output_size", _pair(m.output_size), 1)
    return item


def _plain(op: str, **fields: Callable[[Any], Any]) -> Callable[[nn.Module, fx.Node], Any]:
    def mapped(m: Any, node: fx.Node) -> dict[str, Any]:
        return {"op": op, **{k: f(m) for k, f in fields.items()}}

    return mapped


def _upsample(m: nn.Upsample, node: fx.Node) -> dict[str, Any]:
    scale = m.scale_factor if isinstance(m.scale_factor, (tuple, list)) else [m.scale_factor] * 2
    if m.mode != "nearest" or m.size is not None or any(float(s) != int(s) for s in scale):
        raise Unmapped(f"module Upsample (mode {m.mode}, size {m.size}, scale {m.scale_factor})",
                       "archspec's upsample is nearest by an integer scale_factor")  # fmt: skip
    return {"op": "upsample", "scale_factor": _pair([int(s) for s in scale])}


def _dropout(m: nn.Dropout, node: fx.Node) -> dict[str, Any]:
    return {"op": "dropout", "p": m.p} if m.p != 0.5 else {"op": "dropout"}


def _gelu(m: nn.GELU, node: fx.Node) -> dict[str, Any]:
    return {"op": "gelu"} if m.approximate == "none" else {"op": "gelu", "approximate": "tanh"}


def _flatten(m: nn.Flatten, node: fx.Node) -> dict[str, Any]:
    if m.start_dim != 1 or m.end_dim != -1:
        raise Unmapped("module Flatten not from axis 1 to the end")
    return {"op": "flatten"}


def _attention(m: nn.MultiheadAttention, node: fx.Node) -> dict[str, Any]:
    same = len({id(a) for a in node.args[:3]}) == 1
    if not (m.batch_first and m._qkv_same_embed_dim and same and m.bias_k is None):
        raise Unmapped("module MultiheadAttention other than batch_first self-attention")
    item: dict[str, Any] = {"op": "attention", "num_heads": m.num_heads}
    _put(item, "dropout", m.dropout, 0.0)
    _put(item, "bias", m.in_proj_bias is not None, True)
    return item


def _softmax(m: nn.Softmax, node: fx.Node) -> dict[str, Any]:
    return {"op": "softmax", "dim": m.dim}


def _stochastic_depth(m: Any, node: fx.Node) -> dict[str, Any]:
    item: dict[str, Any] = {"op": "stochastic_depth", "p": m.p}
    _put(item, "mode", m.mode, "row")
    return item


def _squeeze_excitation(m: Any, node: fx.Node) -> dict[str, Any]:
    acts = {nn.ReLU: "relu", nn.SiLU: "silu", nn.GELU: "gelu", nn.Hardswish: "hardswish"}
    gates = {nn.Sigmoid: "sigmoid", nn.Hardsigmoid: "hardsigmoid"}
    act, gate = acts.get(type(m.activation)), gates.get(type(m.scale_activation))
    if act is None or gate is None or m.fc1.kernel_size != (1, 1):
        raise Unmapped("module SqueezeExcitation with other activations")
    item: dict[str, Any] = {"op": "squeeze_excitation", "squeeze_channels": m.fc1.out_channels}
    _put(item, "activation", act, "relu")
    _put(item, "gate", gate, "sigmoid")
    return item


def _timm_activations() -> dict[type, str]:
    """timm's own activation modules (its `create_act_layer` gives them where torch has no
    memory-efficient one): the same functions as torch's."""
    try:
        import timm.layers.activations as timm_act
    except ImportError:
        return {}
    return {
        timm_act.Swish: "silu",
        timm_act.Sigmoid: "sigmoid",
        timm_act.Tanh: "tanh",
        timm_act.HardSwish: "hardswish",
        timm_act.HardSigmoid: "hardsigmoid",
        timm_act.GELU: "gelu",
    }


_ACTIVATIONS: dict[type, str] = {
    **_timm_activations(),
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.SiLU: "silu",
    nn.GELU: "gelu",
    nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
}


def _eca(m: Any, node: fx.Node) -> dict[str, Any]:
    """timm's EcaModule: eca (one 1-D convolution across the pooled channels, then a gate)."""
    gates = {"Sigmoid": "sigmoid", "Hardsigmoid": "hardsigmoid", "HardSigmoid": "hardsigmoid"}
    gate = gates.get(type(m.gate).__name__)
    conv = m.conv
    plain = m.conv2 is None and conv.bias is None and conv.padding_mode == "zeros"
    if not plain or gate is None or conv.padding != ((conv.kernel_size[0] - 1) // 2,):
        raise Unmapped(f"module {type(m).__name__} with an MLP, a bias or another gate")
    item: dict[str, Any] = {"op": "eca", "kernel_size": conv.kernel_size[0]}
    _put(item, "gate", gate, "sigmoid")
    return item


def _groupnorm(m: nn.GroupNorm, node: fx.Node) -> dict[str, Any]:
    item: dict[str, Any] = {"op": "groupnorm", "num_groups": m.num_groups}
    _put(item, "eps", m.eps, 1e-5)
    _put(item, "affine", m.affine, True)
    return item


_PAD_MODES = {
    nn.ZeroPad2d: "constant",
    nn.ConstantPad2d: "constant",
    nn.ReflectionPad2d: "reflect",
    nn.ReplicationPad2d: "replicate",
    nn.CircularPad2d: "circular",
}


def _pad(m: Any, node: fx.Node) -> dict[str, Any]:
    """nn.ZeroPad2d and its kin: `padding` is (left, right, top, bottom) of an image."""
    left, right, top, bottom = m.padding
    item: dict[str, Any] = {"op": "pad", "padding": [top, bottom, left, right]}
    _put(item, "mode", _PAD_MODES[type(m)], "constant")
    _put(item, "value", float(getattr(m, "value", 0.0)), 0.0)
    return item


def _batchnorm_act(m: Any, node: fx.Node) -> list[dict[str, Any]]:
    """timm's BatchNormAct2d and GroupNormAct: the norm (its weights at the module's name),
    then its act."""
    if not isinstance(m.drop, nn.Identity):
        raise Unmapped(f"module {type(m).__name__} with dropout")
    items = [_groupnorm(m, node) if isinstance(m, nn.GroupNorm) else _batchnorm(m, node)]
    if isinstance(m.act, nn.Identity):
        return items
    if isinstance(m.act, nn.LeakyReLU):
        return [*items, {"op": "leaky_relu", "negative_slope": m.act.negative_slope}]
    act = _ACTIVATIONS.get(type(m.act))
    if act is None:
        raise Unmapped(f"module {type(m).__name__} with {type(m.act).__name__}")
    return [*items, {"op": act}]


def _swin_window_attention(m: Any, node: fx.Node) -> dict[str, Any]:
    """timm's Swin WindowAttention as traced in place of its block's `_attn(x)` (see
    METHOD_CALLS): shift, partition into windows, attention, merge, shift back, on (N,H,W,C)."""
    block = node.meta.get("caller")
    if block is None or len(dims(node.args[0])) != 3:  # type: ignore[arg-type]
        raise Unmapped("module timm WindowAttention called on windows, outside its Swin block")
    h, w, c = dims(node.args[0])  # type: ignore[arg-type]
    window, shift = tuple(block.window_size), tuple(block.shift_size)
    if h % window[0] or w % window[1]:  # timm shifts before padding, archspec after
        raise Unmapped("module timm WindowAttention on a map not split into whole windows")
    if m.qkv.out_features != 3 * c:
        raise Unmapped("module timm WindowAttention with head_dim * num_heads != channels")
    item: dict[str, Any] = {"op": "window_attention", "num_heads": m.num_heads}
    item["window_size"] = _pair(window)
    _put(item, "shift_size", _pair(shift), 0)
    _put(item, "qkv_bias", m.qkv.bias is not None, True)
    _put(item, "proj_bias", m.proj.bias is not None, True)
    _put(item, "attention_dropout", m.attn_drop.p, 0.0)
    _put(item, "dropout", m.proj_drop.p, 0.0)
    item["persistent_index"] = False  # timm rebuilds relative_position_index on load
    return item


def _modules() -> dict[type, Callable[[Any, fx.Node], Any]]:
    table: dict[type, Callable[[Any, fx.Node], dict[str, Any]]] = {
        nn.Conv2d: _conv,
        nn.BatchNorm2d: _batchnorm,
        nn.BatchNorm1d: _batchnorm,
        nn.LayerNorm: _layernorm,
        nn.GroupNorm: _groupnorm,
        **{cls: _pad for cls in _PAD_MODES},
        nn.Linear: _linear,
        nn.MaxPool2d: _pool("maxpool"),
        nn.AvgPool2d: _pool("avgpool"),
        nn.AdaptiveAvgPool2d: _adaptive_avgpool,
        nn.ReLU: _plain("relu"),
        nn.ReLU6: _plain("relu6"),
        nn.SiLU: _plain("silu"),
        nn.Hardswish: _plain("hardswish"),
        nn.Hardsigmoid: _plain("hardsigmoid"),
        nn.Sigmoid: _plain("sigmoid"),
        nn.Tanh: _plain("tanh"),
        nn.GELU: _gelu,
        nn.LeakyReLU: _plain("leaky_relu", negative_slope=lambda m: m.negative_slope),
        nn.Dropout: _dropout,
        nn.Identity: _plain("identity"),
        nn.Flatten: _flatten,
        nn.Upsample: _upsample,
        nn.MultiheadAttention: _attention,
        nn.Softmax: _softmax,
    }
    try:
        import timm.layers as timm_layers
        import timm.models.swin_transformer as timm_swin

        table[timm_layers.BatchNormAct2d] = _batchnorm_act
        table[timm_layers.GroupNormAct] = _batchnorm_act
        table[timm_layers.GroupNorm] = _groupnorm
        table[timm_layers.GroupNorm1] = _groupnorm
        table[timm_layers.Conv2dSame] = _conv_tf_same
        table[timm_layers.EcaModule] = _eca
        table[timm_layers.StdConv2d] = _std_conv
        table[timm_layers.StdConv2dSame] = _std_conv
        table[timm_layers.ScaledStdConv2d] = _scaled_std_conv
        table[timm_layers.ScaledStdConv2dSame] = _scaled_std_conv
        table[timm_layers.LayerNorm2d] = _layernorm
        table[timm_layers.LayerNorm] = _layernorm
        table[timm_layers.Linear] = _linear
        table[timm_swin.WindowAttention] = _swin_window_attention
    except ImportError:
        pass
    try:
        import torchvision.models.convnext as tv_convnext
        import torchvision.ops as tv_ops

        table[tv_ops.StochasticDepth] = _stochastic_depth
        table[tv_ops.SqueezeExcitation] = _squeeze_excitation
        table[tv_convnext.LayerNorm2d] = _layernorm  # over channels of (N,C,H,W)
    except ImportError:
        pass
    return table


MODULES = _modules()


def _method_calls() -> dict[type, tuple[str, str]]:
    """Module classes whose method `name` is traced as one call of their child `child` (the
    op takes the child's name and weights; node.meta["caller"] is the module): timm's Swin
    block computes its shifted-window attention in `_attn(x)` around its `attn` child, which
    sees only windows."""
    try:
        import timm.models.swin_transformer as timm_swin

        return {timm_swin.SwinTransformerBlock: ("_attn", "attn")}
    except ImportError:
        return {}


METHOD_CALLS = _method_calls()


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def op_importing(cls: type) -> Any:
    """The registered op (built-in or plugin) whose `imports` names this module class."""
    from archspec.ops import REGISTRY

    name = qualified(cls)
    return next((op for op in REGISTRY.values() if name in op.imports), None)


def map_module(module: nn.Module, node: fx.Node) -> Mapped:
    mapper = MODULES.get(type(module))
    if mapper is None:
        op = op_importing(type(module))
        if op is None:
            raise Unmapped(f"module {qualified(type(module))}")
        return Mapped({"op": op.op, **op.fields_of(module)}, tensor_args(node))
    item = mapper(module, node)
    if isinstance(item, list):
        return Mapped(item, tensor_args(node))
    if item.get("op") == "attention":
        return Mapped(item, [node.args[0]])  # type: ignore[list-item]
    return Mapped(item, tensor_args(node))


# --- functions and tensor methods ------------------------------------------------------------


def _arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _binary(node: fx.Node, merge: str) -> Mapped:
    a, b = _arg(node, 0, "input"), _arg(node, 1, "other")
    tensors = [x for x in (a, b) if isinstance(x, fx.Node) and is_tensor(x)]
    for k, value in enumerate(tensors if len(tensors) == 2 else []):
        if _learned_scalar(value):
            item: dict[str, Any] = {"op": "scale", "learned": "scalar"}
            _put(item, "value", _attribute(value).item(), 1.0)  # type: ignore[union-attr]
            return Mapped(item, [tensors[1 - k]], name=str(value.target).split(".")[-1])
        if not value.meta["tensor_meta"].shape:
            raise Unmapped(
                f"function {merge} with a 0-dim tensor",
                "archspec holds one only as a scale's learned scalar, a parameter read once",
            )
    if len(tensors) == 2:
        if merge == "div":
            raise Unmapped(f"function {merge} of two tensors")
        for k, value in enumerate(tensors):
            shape = _broadcast_shape(value, tensors[1 - k])
            if shape is not None and (k == 0 or merge != "sub"):
                # reshape the parameter to the rank it broadcasts at, then merge
                items = [{"op": "reshape", "shape": shape}, {"op": merge}]
                return Mapped(items, [value], extra=[[tensors[1 - k]]])
        return Mapped({"op": merge}, tensors)
    scalar = b if tensors and tensors[0] is a else a
    if not isinstance(scalar, (int, float)) or not tensors:
        raise Unmapped(f"function {merge} with a non-constant operand")
    if merge in ("add", "sub") and scalar == 0 and (merge == "add" or tensors[0] is a):
        return Mapped(alias=tensors[0])  # `out = 0; out = out + branch(x)` (MobileOne, FastViT)
    if merge == "mul":
        return Mapped({"op": "scale", "value": float(scalar)}, tensors)
    if merge == "div" and tensors[0] is a:
        return Mapped({"op": "scale", "value": 1.0 / float(scalar)}, tensors)
    raise Unmapped(f"function {merge} with a constant")


def _broadcast_shape(value: fx.Node, other: fx.Node) -> list[int] | None:
    """The sizes after the batch axis at which a parameter of lower rank broadcasts against
    `other` (ResMLP's (C,) layer scale times (N,L,C) tokens: [1, C]; a scale viewed as (1, C)),
    where archspec's parameter op would read it otherwise; None if it already lines up."""
    if value.op != "get_attr" and (_from_input(value) or _bias_gather(value) is not None):
        return None  # (a relative position bias has its op's own (1, heads, P, P) shape)
    full = list(value.meta["tensor_meta"].shape)
    rank = len(other.meta["tensor_meta"].shape)
    if len(full) >= rank:
        return None
    as_parameter = _parameter_dims(value)
    wanted = ([1] * (rank - len(full)) + full)[1:]
    return None if as_parameter == wanted else wanted


def _act(op: str) -> Callable[[fx.Node], Mapped]:
    return lambda node: Mapped({"op": op}, tensor_args(node)[:1])


def _tokens_as_samples(flat: fx.Node) -> bool:
    """`norm(x.flatten(0, 1)).reshape_as(x)` (LeViT's LinearNorm): batchnorm over the tokens'
    channels, which archspec's batchnorm does on (N,L,C) itself."""
    source = flat.args[0]
    return (
        _arg(flat, 1, "start_dim", 0) == 0
        and _arg(flat, 2, "end_dim", -1) == 1
        and len(flat.users) > 0
        and all(
            user.op == "call_module"
            and len(user.users) > 0
            and all(u.target == "reshape_as" and u.args[1] is source for u in user.users)
            for user in flat.users
        )
    )


def _flatten_fn(node: fx.Node) -> Mapped:
    start, end = _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1)
    if _tokens_as_samples(node):
        return Mapped(alias=node.args[0])  # type: ignore[arg-type]
    if start != 1 or end != -1:
        return _reshape(node)
    return Mapped({"op": "flatten"}, [node.args[0]])  # type: ignore[list-item]


def _reshape(node: fx.Node) -> Mapped:
    source = node.args[0]
    if _bias_gather(source) is not None:
        return Mapped(alias=source)  # type: ignore[arg-type]
    if _from_input(source):  # type: ignore[arg-type]
        before, sizes = list(dims(source)), list(dims(node))  # type: ignore[arg-type]
    else:  # a parameter reshaped (PoolFormer's scale.view(C, 1, 1)): all its axes are its own
        before, sizes = _parameter_dims(source), _parameter_dims(node)  # type: ignore[arg-type]
    if _folds_batch(source, node):  # type: ignore[arg-type]
        # MobileViT's patches: (N, C, H, W) -> (N * C * H/p, p, W/p, p)
        raise Unmapped(
            function_name(node),
            "it folds the batch axis into another; a spec's batch axis stays first and apart",
        )
    if sizes == before:
        return Mapped(alias=source)  # type: ignore[arg-type]
    item: dict[str, Any] = {"op": "reshape", "shape": sizes}
    if _channels_last(before, sizes) and not _read_as_image(node):
        item["layout"] = "HWC"
    elif len(sizes) == 3 and _read_over_last_axis(node):
        item["layout"] = "ND"  # MaxViT's (groups, tokens, C) partitions, not an image
    return Mapped(item, [source])  # type: ignore[list-item]


def _folds_batch(source: fx.Node, node: fx.Node) -> bool:
    """`node` reshapes `source`, a tensor computed from the model's input (its first axis the
    batch), to a first axis of another size."""
    if node.meta["tensor_meta"].shape[0] == source.meta["tensor_meta"].shape[0]:
        return False
    return _from_input(source)


def _from_input(node: fx.Node) -> bool:
    """`node` is computed from the model's input, so its first axis is the batch (not only
    from parameters and buffers, whose axes are all their own)."""
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n.op == "placeholder":
            return True
        for arg in n.all_input_nodes:
            if arg not in seen:
                seen.add(arg)
                todo.append(arg)
    return False


def _parameter_dims(node: fx.Node) -> list[int]:
    """The sizes of a tensor computed from parameters only, as archspec's parameter op reads a
    shape: a leading 1 is the batch axis, otherwise every axis is after it."""
    shape = list(node.meta["tensor_meta"].shape)
    return shape[1:] if shape[0] == 1 and len(shape) > 1 else shape


def _channels_last(source: list[int], sizes: list[int]) -> bool:
    """A 3-axis result that is an (H, W, C) map, not the (C, H, W) a reshape gives by default:
    (L, C) tokens laid out as H x W (Swin's blocks), or (H, W, ...) with the trailing axes
    merged into the channels (Swin's patch merging)."""
    if len(sizes) != 3:
        return False
    tokens = len(source) == 2 and sizes[2] == source[1] and sizes[0] * sizes[1] == source[0]
    return tokens or (len(source) > 3 and sizes[:2] == source[:2])


_PASS_THROUGH = (nn.Identity, nn.Dropout)


def _read_over_last_axis(node: fx.Node, depth: int = 3) -> bool:
    """A user reads `node` with a LayerNorm or Linear (over its last axis), directly or
    through identities, dropouts and axis swaps."""
    for user in node.users:
        module = _called_module(user)
        if type(module) is nn.LayerNorm or isinstance(module, nn.Linear):  # not LayerNorm2d
            return True
        through = (
            isinstance(module, _PASS_THROUGH)
            or str(user.target)
            in (
                "swapaxes",
                "transpose",
            )
            or user.target in (torch.swapaxes, torch.transpose)
        )
        if through and depth > 0 and _read_over_last_axis(user, depth - 1):
            return True
    return False


_IMAGE_MODULES = (nn.Conv2d, nn.BatchNorm2d, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d)


def _read_as_image(node: fx.Node) -> bool:
    """A convolution, batchnorm or pooling reads `node`: it is an (N,C,H,W) image (MaxViT's
    departition gives (C, H, 1, W, 1) -> (C, H, W) at its last stage, which the shape alone
    would take for a channels-last merge)."""
    return any(isinstance(_called_module(user), _IMAGE_MODULES) for user in node.users)


def _called_module(node: fx.Node) -> nn.Module | None:
    if node.op != "call_module" or node.graph.owning_module is None:
        return None
    return node.graph.owning_module.get_submodule(str(node.target))


# --- MaxViT's relative position bias: table[index.view(-1)].view(P*P, P*P, -1)
# .permute(2, 0, 1).contiguous().unsqueeze(0), as the relative_position_bias op computes it

_BIAS_STEPS = ("view", "reshape", "permute", "contiguous", "unsqueeze")


def _attribute(node: Any) -> torch.Tensor | None:
    if not (isinstance(node, fx.Node) and node.op == "get_attr"):
        return None
    value: Any = node.graph.owning_module
    for part in str(node.target).split("."):
        value = getattr(value, part, None)
    return value if isinstance(value, torch.Tensor) else None


def _bias_window(gather: fx.Node) -> int | None:
    """P when `gather` is table[index]: a ((2P-1)**2, heads) table and the relative position
    index of a P x P window, flattened (a constant torch.fx made of the index buffer)."""
    if gather.target is not operator.getitem or len(gather.args) != 2:
        return None
    table, index = (_attribute(a) for a in gather.args)
    if table is None or index is None or table.ndim != 2 or index.ndim != 1:
        return None
    side = round(table.shape[0] ** 0.5)
    if side * side != table.shape[0] or side % 2 == 0:
        return None
    from archspec.ops.modules import relative_position_index

    window = (side + 1) // 2
    expected = relative_position_index((window, window))
    if index.shape != expected.shape or not torch.equal(index.cpu(), expected):
        return None
    return window


def _bias_chain_ok(gather: fx.Node) -> bool:
    """`gather` is followed by exactly view(P*P, P*P, -1), permute(2, 0, 1), [contiguous],
    unsqueeze(0), each the only reader of the one before."""
    steps, node = [], gather
    while len(node.users) == 1:
        user = next(iter(node.users))
        if user.op != "call_method" or user.target not in _BIAS_STEPS:
            break
        if user.target != "contiguous":
            steps.append(user)
        node = user
    if [str(s.target) for s in steps][1:] != ["permute", "unsqueeze"]:
        return False
    view, permute, unsqueeze = steps
    heads = gather.meta["tensor_meta"].shape[-1]
    tokens = round(gather.meta["tensor_meta"].shape[0] ** 0.5)
    return (
        view.target in ("view", "reshape")
        and tuple(view.meta["tensor_meta"].shape) == (tokens, tokens, heads)
        and tuple(permute.args[1:]) == (2, 0, 1)
        and tuple(unsqueeze.args[1:]) == (0,)
    )


def _bias_gather(node: Any) -> fx.Node | None:
    """The table lookup starting the relative-position-bias chain that `node` is part of."""
    while isinstance(node, fx.Node) and node.op == "call_method" and node.target in _BIAS_STEPS:
        node = node.args[0]
    if isinstance(node, fx.Node) and _bias_window(node) and _bias_chain_ok(node):
        return node
    return None


def _relative_position_bias(node: fx.Node) -> Mapped | None:
    window = _bias_window(node)
    if window is None or not _bias_chain_ok(node):
        return None
    item: dict[str, Any] = {"op": "relative_position_bias", "window_size": window}
    index, owner = node.args[1], node.graph.owning_module
    if _own_index(index) and str(index.target) not in owner.state_dict():  # type: ignore[union-attr]
        item["saved"] = False  # timm's MaxxViT: a buffer kept out of the state_dict
    return Mapped(item, [node.args[0]], name="relative_position_index")  # type: ignore[list-item]


def _own_index(node: Any) -> bool:
    """The index buffer itself, read by the gather (timm stores it flat), not a constant
    torch.fx made of a view of it (torchvision's `index.view(-1)`)."""
    return (
        isinstance(node, fx.Node)
        and node.op == "get_attr"
        and not str(node.target).startswith("_tensor_constant")
    )


def _unsqueeze(node: fx.Node) -> Mapped:
    """A size-1 axis inserted or removed (GCNet's `attn.unsqueeze(3)`): a reshape."""
    if _bias_gather(node.args[0]) is not None:
        if _read_at_its_rank(node):  # its (1, heads, P, P): the 1 is the batch axis
            return Mapped({"op": "reshape", "shape": list(dims(node))}, [node.args[0]])  # type: ignore[list-item]
        return Mapped(alias=node.args[0])  # type: ignore[arg-type]
    return _reshape(node)


def _read_at_its_rank(bias: fx.Node) -> bool:
    """The (1, heads, P, P) relative position bias (the op's own shape after the batch axis)
    is read, through `contiguous`, with tensors of its own rank: CoAtNet's attention over a
    whole (N, heads, L, d) image, whose batch axis its 1 then is, where MaxViT's windows,
    (N, windows, heads, L, L), broadcast it over the windows."""
    rank = len(bias.meta["tensor_meta"].shape)
    for user in bias.users:
        if user.target == "contiguous":
            if _read_at_its_rank(user):
                return True
            continue
        others = [t for t in tensor_args(user) if t is not bias]
        if any(len(t.meta["tensor_meta"].shape) == rank for t in others):
            return True
    return False


def _permute(node: fx.Node) -> Mapped:
    if _bias_gather(node.args[0]) is not None:
        return Mapped(alias=node.args[0])  # type: ignore[arg-type]
    order = node.args[1:] if node.op == "call_method" else (_arg(node, 1, "dims"),)
    if len(order) == 1 and isinstance(order[0], (list, tuple)):
        order = tuple(order[0])
    rank = len(dims(node)) + 1
    order = [d % rank for d in order]
    if order == list(range(rank)):
        return Mapped(alias=node.args[0])  # type: ignore[arg-type]
    if order[0] != 0:  # the batch axis moves: only as the stack that unbind takes apart
        if node.users and all(_takes_apart(user, node) for user in node.users):
            return Mapped(alias=node.args[0])  # type: ignore[arg-type]  # each part selects
        raise Unmapped("function permute of the batch axis")
    return Mapped({"op": "permute", "dims": order}, [node.args[0]])  # type: ignore[list-item]


def _unbinds(node: fx.Node) -> bool:
    return getattr(node.target, "__name__", node.target) == "unbind"


def _takes_apart(user: fx.Node, stack: fx.Node) -> bool:
    """`stack.unbind(0)` or `stack[i]`: reads one entry of the first axis."""
    if _unbinds(user):
        return _arg(user, 1, "dim", 0) == 0
    return (
        user.target is operator.getitem and user.args[0] is stack and isinstance(user.args[1], int)
    )


def _permute_order(node: fx.Node) -> list[int]:
    order = node.args[1:] if node.op == "call_method" else (_arg(node, 1, "dims"),)
    if len(order) == 1 and isinstance(order[0], (list, tuple)):
        order = tuple(order[0])
    rank = len(dims(node)) + 1
    return [d % rank for d in order]


def _unbound(source: fx.Node, dim: int, index: int) -> Mapped:
    """Entry `index` of axis `dim` of `source` (`source.unbind(dim)[index]`, `source[index]`):
    select. ViT's `qkv.reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)` puts the stack
    axis ahead of the batch: that is select(dim=2) of the reshape, then permute(0, 2, 1, 3)."""
    rank = len(dims(source)) + 1
    dim %= rank
    order = list(range(rank))
    if source.op != "placeholder" and getattr(source.target, "__name__", source.target) == (
        "permute"
    ):
        permuted = _permute_order(source)
        if permuted[0] != 0:
            order, source = permuted, source.args[0]  # type: ignore[assignment]
    axis = order[dim]
    rest = [a - (a > axis) for j, a in enumerate(order) if j != dim]
    if axis == 0 or rest[0] != 0:
        raise Unmapped("function getitem (indexing)", "an entry of the batch axis")
    select = {"op": "select", "dim": axis, "index": index}
    if rest == sorted(rest):
        return Mapped(select, [source])  # type: ignore[list-item]
    return Mapped([select, {"op": "permute", "dims": rest}], [source])  # type: ignore[list-item]


def _transpose(node: fx.Node) -> Mapped:
    rank = len(dims(node)) + 1
    a, b = (_arg(node, 1, "dim0") % rank, _arg(node, 2, "dim1") % rank)
    order = list(range(rank))
    order[a], order[b] = order[b], order[a]
    return Mapped({"op": "permute", "dims": order}, [node.args[0]])  # type: ignore[list-item]


def _cat(node: fx.Node) -> Mapped:
    parts = list(_arg(node, 0, "tensors"))
    if len(parts) == 1:  # DenseNet's first layer concatenates a list of one
        return Mapped(alias=parts[0])
    dim = _arg(node, 1, "dim", 0)
    rank = len(dims(node)) + 1
    dim %= rank
    if dim == 1 and rank == 4:
        return Mapped({"op": "concat"}, parts)
    if dim == 1 and rank == 3:
        return Mapped({"op": "concat", "axis": "tokens"}, parts)
    if dim == rank - 1:
        return Mapped({"op": "concat"}, parts)
    raise Unmapped("function cat along an axis other than channels or tokens")


def _stack(node: fx.Node) -> Mapped:
    """torch.stack(parts, dim=1) of images or token sequences (SKNet's paths): the parts
    side by side on the channels (the tokens), then a reshape that puts the new axis first."""
    parts = list(_arg(node, 0, "tensors"))
    dim = _arg(node, 1, "dim", 0) % (len(dims(node)) + 1)
    rank = len(dims(parts[0])) + 1
    if dim != 1 or rank not in (3, 4):
        raise Unmapped("function torch.stack other than on axis 1 of images or tokens")
    concat: dict[str, Any] = {"op": "concat"} if rank == 4 else {"op": "concat", "axis": "tokens"}
    return Mapped([concat, {"op": "reshape", "shape": list(dims(node))}], parts)


def _sum(node: fx.Node) -> Mapped:
    """x.sum(dim) along one axis after the batch (ResNeSt's and SKNet's paths): the sum op."""
    axes = _arg(node, 1, "dim")
    axes = list(axes) if isinstance(axes, (list, tuple)) else [axes]
    rank = len(dims(node.args[0])) + 1  # type: ignore[arg-type]
    if len(axes) != 1 or axes[0] is None or axes[0] % rank == 0:
        raise Unmapped(f"{function_name(node)} other than along one axis after the batch")
    item: dict[str, Any] = {"op": "sum", "dim": axes[0] % rank}
    _put(item, "keepdim", bool(_arg(node, 2, "keepdim", False)), False)
    return Mapped(item, [node.args[0]])  # type: ignore[list-item]


def _interpolate(node: fx.Node) -> Mapped:
    """F.interpolate, nearest, to a whole multiple of the input's height and width (GhostNet
    V2's gate, brought back to its branch's size): upsample by that factor."""
    source = node.args[0]
    mode = _arg(node, 3, "mode", "nearest")
    before, after = dims(source), dims(node)  # type: ignore[arg-type]
    if mode != "nearest" or len(before) != 3 or before[0] != after[0]:
        raise Unmapped(f"function interpolate (mode {mode})", "archspec's upsample is nearest")
    factors = [b // a for a, b in zip(before[1:], after[1:], strict=True)]
    if any(a * f != b for a, b, f in zip(before[1:], after[1:], factors, strict=True)):
        raise Unmapped(
            "function interpolate to a size that is no whole multiple of the input's",
            "archspec's upsample scales by an integer factor",
        )
    if factors == [1, 1]:
        return Mapped(alias=source)  # type: ignore[arg-type]
    return Mapped({"op": "upsample", "scale_factor": _pair(factors)}, [source])  # type: ignore[list-item]


def _adaptive_avgpool_fn(node: fx.Node) -> Mapped:
    size = _pair(_arg(node, 1, "output_size"))
    item: dict[str, Any] = {"op": "adaptive_avgpool"}
    _put(item, "output_size", size, 1)
    return Mapped(item, [node.args[0]])  # type: ignore[list-item]


def _mean(node: fx.Node) -> Mapped:
    axes = _arg(node, 1, "dim")
    keep = _arg(node, 2, "keepdim", False)
    rank = len(dims(node.args[0])) + 1  # type: ignore[arg-type]
    axes = tuple(sorted(a % rank for a in (axes if isinstance(axes, (list, tuple)) else [axes])))
    if axes == (2, 3) and keep and len(dims(node)) == 3:
        return Mapped({"op": "adaptive_avgpool"}, [node.args[0]])  # type: ignore[list-item]
    if len(axes) == 1 and len(dims(node.args[0])) >= 2:  # type: ignore[arg-type]
        item: dict[str, Any] = {"op": "mean", "dim": axes[0]}
        _put(item, "keepdim", bool(keep), False)
        return Mapped(item, [node.args[0]])  # type: ignore[list-item]
    if axes == (2, 3) and not keep and len(dims(node)) == 1:
        items = [{"op": "adaptive_avgpool"}, {"op": "flatten"}]
        return Mapped(items, [node.args[0]])  # type: ignore[arg-type,list-item]
    if axes == (1, 2) and not keep and len(dims(node)) == 1 and rank == 4:  # (N,H,W,C)
        items = [
            {"op": "permute", "dims": [0, 3, 1, 2]},
            {"op": "adaptive_avgpool"},
            {"op": "flatten"},
        ]
        return Mapped(items, [node.args[0]])  # type: ignore[arg-type,list-item]
    raise Unmapped("function mean other than over height and width with keepdim")


def _pool_fn(op: str) -> Callable[[fx.Node], Mapped]:
    def mapped(node: fx.Node) -> Mapped:
        kernel = _pair(_arg(node, 1, "kernel_size"))
        stride = _arg(node, 2, "stride", None)
        stride = kernel if stride in (None, []) else _pair(stride)
        item: dict[str, Any] = {"op": op, "kernel_size": kernel}
        _put(item, "stride", stride, kernel)
        _put(item, "padding", _pair(_arg(node, 3, "padding", 0)), 0)
        index = 5 if op == "maxpool" else 4  # max_pool2d has dilation before ceil_mode
        if op == "maxpool" and _pair(_arg(node, 4, "dilation", 1)) != 1:
            raise Unmapped(f"function {op} with dilation")
        _put(item, "ceil_mode", bool(_arg(node, index, "ceil_mode", False)), False)
        if op == "avgpool":
            _put(item, "count_include_pad", bool(_arg(node, 5, "count_include_pad", True)), True)
            if _arg(node, 6, "divisor_override", None) is not None:
                raise Unmapped("function avg_pool2d with divisor_override")
        return Mapped(item, [node.args[0]])  # type: ignore[list-item]

    return mapped


def _pad_fn(node: fx.Node) -> Mapped:
    """F.pad of the two spatial axes of an (N,C,H,W) or (N,H,W,C) map (nothing where every pad
    is 0). A pad computed in the forward (Swin's `W % 2`) is read off the shapes: the output's
    growth along its axis less the other side's constant."""
    source = node.args[0]
    before, after = list(dims(source)), list(dims(node))  # type: ignore[arg-type]
    if before == after:
        return Mapped(alias=source)  # type: ignore[arg-type]
    pads, mode = list(_arg(node, 1, "pad")), _arg(node, 2, "mode", "constant")
    value = _arg(node, 3, "value", None) or 0.0
    sides: dict[int, list[int]] = {}  # axis after the batch -> [before, after]
    for i in range(0, len(pads), 2):
        axis, (low, high) = len(before) - 1 - i // 2, pads[i : i + 2]
        grown = after[axis] - before[axis]
        if not isinstance(low, int) and isinstance(high, int):
            low = grown - high
        elif not isinstance(high, int) and isinstance(low, int):
            high = grown - low
        if not (isinstance(low, int) and isinstance(high, int)):
            raise Unmapped("function pad with both sides of an axis computed")
        if low or high:
            sides[axis] = [low, high]
    if len(before) != 3 or not (set(sides) <= {1, 2} or set(sides) <= {0, 1}):
        raise Unmapped("function pad other than of an image's height and width")
    first = 1 if set(sides) <= {1, 2} else 0  # height's axis: (C,H,W) or (H,W,C)
    top, bottom = sides.get(first, [0, 0])
    left, right = sides.get(first + 1, [0, 0])
    item: dict[str, Any] = {"op": "pad", "padding": [top, bottom, left, right]}
    _put(item, "mode", mode, "constant")
    _put(item, "value", float(value), 0.0)
    return Mapped(item, [source])  # type: ignore[list-item]


def _softmax_fn(node: fx.Node) -> Mapped:
    return Mapped({"op": "softmax", "dim": _arg(node, 1, "dim")}, [node.args[0]])  # type: ignore[list-item]


def _normalize(node: fx.Node) -> Mapped:
    item: dict[str, Any] = {"op": "normalize"}
    _put(item, "p", float(_arg(node, 1, "p", 2.0)), 2.0)
    _put(item, "dim", _arg(node, 2, "dim", 1), -1)
    _put(item, "eps", _arg(node, 3, "eps", 1e-12), 1e-12)
    return Mapped(item, [node.args[0]])  # type: ignore[list-item]


def _matmul(node: fx.Node) -> Mapped:
    return Mapped({"op": "matmul"}, tensor_args(node)[:2])


def _einsum(node: fx.Node) -> Mapped:
    """A batched matrix product written as einsum (MaxViT's attention): "...ik,...jk->...ij"
    is q k^T (matmul with transpose_b), "...ij,...jk->...ik" a plain matmul; the leading
    letters are the same in both operands and the result."""
    equation = str(node.args[0]).replace(" ", "")
    operands = [a for a in node.args[1:] if isinstance(a, fx.Node)]
    if len(operands) == 1 and isinstance(node.args[1], (list, tuple)):
        operands = list(node.args[1])
    inputs, _, out = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) == 2 and len(operands) == 2 and len({len(t) for t in (*terms, out)}) == 1:
        a, b = terms
        lead = a[:-2]
        if len(set(a + b)) == len(lead) + 3 and b[:-2] == lead == out[:-2]:
            i, k = a[-2:]
            if b[-1] == k and out[-2:] == i + b[-2]:
                return Mapped({"op": "matmul", "transpose_b": True}, operands)
            if b[-2] == k and out[-2:] == i + b[-1]:
                return Mapped({"op": "matmul"}, operands)
    raise Unmapped("function torch.einsum other than a batched matrix product")


def _dropout_fn(node: fx.Node) -> Mapped:
    p = _arg(node, 1, "p", 0.5)
    return Mapped({"op": "dropout", "p": p} if p != 0.5 else {"op": "dropout"}, [node.args[0]])  # type: ignore[list-item]


def _alias(node: fx.Node) -> Mapped:
    return Mapped(alias=node.args[0])  # type: ignore[arg-type]


def _is_parts(node: fx.Node) -> bool:
    name = getattr(node.target, "__name__", node.target)
    return name in ("chunk", "split")


def _addcmul(node: fx.Node) -> Mapped:
    """torch.addcmul(a, b, c) = a + b * c (ResMLP's affine norm): mul, then add."""
    a, b, c = (_arg(node, i, n) for i, n in enumerate(("input", "tensor1", "tensor2")))
    if _arg(node, 3, "value", 1) != 1 or not all(isinstance(t, fx.Node) for t in (a, b, c)):
        raise Unmapped("function torch.addcmul with a value or constants")
    return Mapped([{"op": "mul"}, {"op": "add"}], [b, c], extra=[[a]])


def _reshape_as(node: fx.Node) -> Mapped:
    norm = node.args[0]
    if isinstance(norm, fx.Node) and norm.op == "call_module":
        flat = norm.args[0]
        if isinstance(flat, fx.Node) and flat.target == "flatten" and _tokens_as_samples(flat):
            return Mapped(alias=norm)  # the norm already kept the tokens' shape
    return _reshape(node)


def _expand(node: fx.Node) -> Mapped:
    source = node.args[0]
    if isinstance(source, fx.Node) and source.op == "get_attr":
        return Mapped(alias=source)  # a parameter op is expanded to the batch already
    if isinstance(source, fx.Node) and dims(source) == dims(node):
        return Mapped(alias=source)
    if isinstance(source, fx.Node) and node.users and all(_merges(u) for u in node.users):
        return Mapped(alias=source)  # ECA's `x * y.expand_as(x)`: the merge broadcasts y
    raise Unmapped(f"{function_name(node)} of a computed tensor")


def _merges(node: fx.Node) -> bool:
    """An elementwise merge of two tensors of one rank, which broadcasts size-1 axes."""
    if _BINARY.get(node.target) not in ("add", "mul", "sub"):
        return False
    tensors = tensor_args(node)
    return len(tensors) == 2 and len({len(t.meta["tensor_meta"].shape) for t in tensors}) == 1


def _parts(node: fx.Node) -> Mapped:
    """x.chunk(n, dim=1) / x.split(size or sizes, dim=1) along the channels of an image (the
    last axis of tokens): archspec's chunk and split, read by part (`from: name.i`)."""
    source = node.args[0]
    how = _arg(node, 1, "chunks" if "chunk" in str(node.target) else "split_size_or_sections")
    rank = len(dims(source)) + 1  # type: ignore[arg-type]
    dim = _arg(node, 2, "dim", 0) % rank
    if dim == 0:
        raise Unmapped(f"{function_name(node)} along the batch axis")
    channel_axis = 1 if rank == 4 else rank - 1
    along = {} if dim == channel_axis else {"dim": dim}  # LeViT splits the head channels
    channels = dims(source)[dim - 1]  # type: ignore[arg-type]
    if "chunk" in str(getattr(node.target, "__name__", node.target)):
        return Mapped({"op": "chunk", "chunks": how, **along}, [source])  # type: ignore[list-item]
    sizes = list(how) if isinstance(how, (list, tuple)) else [how] * (channels // how)
    if sum(sizes) != channels:
        sizes.append(channels - sum(sizes))
    return Mapped({"op": "split", "sizes": sizes, **along}, [source])  # type: ignore[list-item]


def _bias_lookup(node: fx.Node) -> fx.Node | None:
    """The index buffer of `table[:, index]` with both a module's own tensors (LeViT's and
    EfficientFormer's `attention_biases[:, attention_bias_idxs]`), else None."""
    if node.target is not operator.getitem or len(node.args) != 2:
        return None
    table, index = node.args
    if not (isinstance(table, fx.Node) and table.op == "get_attr" and isinstance(index, tuple)):
        return None
    if len(index) == 2 and index[0] == slice(None) and isinstance(index[1], fx.Node):
        return index[1] if index[1].op == "get_attr" else None
    return None


def folded(node: fx.Node) -> bool:
    """A buffer read only as the index of such a lookup or of a relative position bias
    (timm's flat `relative_position_index`), or a learned scalar read once by a product: the
    op that reads it (attention_bias, relative_position_bias, scale) holds it, so it is no
    item of its own."""
    return (
        node.op == "get_attr"
        and bool(node.users)
        and all(
            _bias_lookup(user) is node or (user.args[1:] == (node,) and _bias_window(user))
            for user in node.users
        )
    ) or _learned_scalar(node)


def _learned_scalar(node: fx.Node) -> bool:
    """A 0-dim parameter (NF-Net's skipinit_gain) read once, by a product: `scale` with
    `learned: scalar`, which holds it under its name."""
    if node.op != "get_attr" or len(node.users) != 1:
        return False
    value = _attribute(node)
    (user,) = node.users
    return (
        isinstance(value, nn.Parameter) and value.dim() == 0 and _BINARY.get(user.target) == "mul"
    )


def _attention_bias(table: fx.Node, index: fx.Node) -> Mapped:
    """attention_bias, with the grid and query stride whose index equals the buffer's."""
    from archspec.ops.modules import attention_bias_index

    owner = index.graph.owning_module
    assert owner is not None
    value = owner.get_buffer(str(index.target))
    keys = owner.get_parameter(str(table.target)).shape[-1]  # (heads, h*w)
    queries = value.shape[0] if value.dim() == 2 else -1
    for h in (h for h in range(1, keys + 1) if keys % h == 0):
        w = keys // h
        for stride in range(1, max(h, w) + 1):
            if -(-h // stride) * -(-w // stride) != queries:
                continue
            if torch.equal(attention_bias_index((h, w), stride), value):
                item: dict[str, Any] = {"op": "attention_bias", "resolution": _pair((h, w))}
                _put(item, "stride", stride, 1)
                _put(item, "saved", str(index.target) in owner.state_dict(), True)
                return Mapped(item, [table], name=str(index.target).split(".")[-1])
    raise Unmapped("function getitem (indexing)", "a bias table read by another index")


def _getitem(node: fx.Node) -> Mapped:
    index_buffer = _bias_lookup(node)
    if index_buffer is not None:
        return _attention_bias(node.args[0], index_buffer)  # type: ignore[arg-type]
    source, index = node.args
    bias = _relative_position_bias(node)
    if bias is not None:
        return bias
    if isinstance(source, fx.Node) and _is_parts(source) and isinstance(index, int):
        parts = len(source.meta["tensor_meta"])  # `spx[-1]` (Res2Net) is the last part
        return Mapped(alias=source, part=index % parts)
    if isinstance(source, fx.Node) and _unbinds(source) and isinstance(index, int):
        return _unbound(source.args[0], _arg(source, 1, "dim", 0), index)  # type: ignore[arg-type]
    if isinstance(source, fx.Node) and is_tensor(source) and isinstance(index, int):
        return _unbound(source, 0, index)
    if isinstance(source, fx.Node) and source.op == "call_module" and index == 0:
        return Mapped(alias=source)  # (output, weights) of attention
    if (
        isinstance(index, tuple)
        and len(index) == 2
        and index[0] == slice(None)
        and isinstance(index[1], int)
        and isinstance(source, fx.Node)
        and len(dims(source)) == 2
    ):
        item: dict[str, Any] = {"op": "select_token"}
        _put(item, "index", index[1], 0)
        return Mapped(item, [source])
    narrowed = _channel_slice(source, index)
    if narrowed is not None:
        return narrowed
    strided = _spatial_slice(source, index)
    if strided is not None:
        return strided
    raise Unmapped("function getitem (indexing)")


def _grid_axes(index: Any) -> tuple[slice, slice] | None:
    """The (height, width) slices of `x[:, a:b:s, c:d:t]` (channels-last: axes 1 and 2)."""
    if not isinstance(index, tuple) or len(index) not in (3, 4) or index[0] != slice(None):
        return None
    if len(index) == 4 and index[3] != slice(None):
        return None
    if not all(isinstance(i, slice) for i in index[1:3]):
        return None
    return index[1], index[2]


def _spatial_slice(source: Any, index: Any) -> Mapped | None:
    """`x[:, ::s, ::s]` on a channels-last grid (LeViT's subsampling): the slice op."""
    axes = _grid_axes(index)
    if not (isinstance(source, fx.Node) and axes is not None and len(dims(source)) == 3):
        return None
    item: dict[str, Any] = {"op": "slice"}
    starts, stops, steps = [], [], []
    for part, size in zip(axes, dims(source)[:2], strict=True):
        start, stop, step = part.indices(size)
        if step < 1 or stop <= start:
            return None
        starts.append(start)
        stops.append(None if stop == size else stop)
        steps.append(step)
    _put(item, "start", _pair(starts), 0)
    if stops != [None, None]:
        item["stop"] = _pair(
            [
                size if stop is None else stop
                for stop, size in zip(stops, dims(source)[:2], strict=True)
            ]
        )
    _put(item, "step", _pair(steps), 1)
    return Mapped(item, [source])


def _channel_slice(source: Any, index: Any) -> Mapped | None:
    """`x[:, a:b]` (and `x[:, a:b, :, :]`) on an image: narrow along the channels."""
    if not (isinstance(source, fx.Node) and isinstance(index, tuple) and len(dims(source)) == 3):
        return None
    if len(index) < 2 or index[0] != slice(None) or any(i != slice(None) for i in index[2:]):
        return None
    part = index[1]
    if not isinstance(part, slice) or part.step not in (None, 1):
        return None
    channels = dims(source)[0]
    start, stop, _ = part.indices(channels)
    if not isinstance(start, int) or stop <= start:
        return None
    if start == 0 and stop == channels:
        return Mapped(alias=source)
    return Mapped({"op": "narrow", "start": start, "length": stop - start}, [source])


def _sdpa(node: fx.Node) -> Mapped:
    """F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale): the
    sdpa op; a float mask is its additive bias (a fourth input)."""
    q, k, v = (_arg(node, i, n) for i, n in enumerate(("query", "key", "value")))
    mask = _arg(node, 3, "attn_mask")
    if _arg(node, 4, "dropout_p", 0.0) != 0.0 or node.kwargs.get("enable_gqa", False):
        raise Unmapped("function scaled_dot_product_attention with dropout or grouped queries")
    inputs = [q, k, v]
    if mask is not None:
        if (
            not (isinstance(mask, fx.Node) and is_tensor(mask))
            or not mask.meta["tensor_meta"].dtype.is_floating_point
        ):
            raise Unmapped("function scaled_dot_product_attention with a boolean mask")
        inputs.append(mask)
    item: dict[str, Any] = {"op": "sdpa"}
    _put(item, "scale", node.kwargs.get("scale"), None)
    _put(item, "is_causal", bool(_arg(node, 5, "is_causal", False)), False)
    return Mapped(item, inputs)


def _gelu_fn(node: fx.Node) -> Mapped:
    approximate = node.kwargs.get("approximate", "none")
    item = {"op": "gelu"} if approximate == "none" else {"op": "gelu", "approximate": "tanh"}
    return Mapped(item, [node.args[0]])  # type: ignore[list-item]


def _patch_merging(node: fx.Node) -> Mapped:
    """torchvision's Swin `_patch_merging_pad` (fx-wrapped): an (N,H,W,C) map padded to even
    sizes, its 2x2 patches side by side on the channels in the order x[0::2, 0::2],
    x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]: (H/2, 2, W/2, 2, C) -> (H/2, W/2, 2, 2, C)
    with the column offset first -> (H/2, W/2, 4C)."""
    source = node.args[0]
    h, w, c = dims(source)  # type: ignore[arg-type]
    items: list[dict[str, Any]] = []
    if h % 2 or w % 2:
        items.append({"op": "pad", "padding": [0, h % 2, 0, w % 2]})
    h, w = h + h % 2, w + w % 2
    items += [
        {"op": "reshape", "shape": [h // 2, 2, w // 2, 2, c]},
        {"op": "permute", "dims": [0, 1, 3, 4, 2, 5]},
        {"op": "reshape", "shape": [h // 2, w // 2, 4 * c], "layout": "HWC"},
    ]
    return Mapped(items, [source])  # type: ignore[list-item]


# functions and methods of two operands -> the merge they are (`_binary`)
_BINARY: dict[Any, str] = {
    operator.add: "add",
    operator.iadd: "add",
    torch.add: "add",
    "add": "add",
    "add_": "add",
    operator.mul: "mul",
    operator.imul: "mul",
    torch.mul: "mul",
    "mul": "mul",
    "mul_": "mul",
    operator.truediv: "div",
    operator.sub: "sub",
    torch.sub: "sub",
    "sub": "sub",
}

FUNCTIONS: dict[Any, Callable[[fx.Node], Mapped]] = {
    **{target: functools.partial(_binary, merge=merge) for target, merge in _BINARY.items()},
    torch.relu: _act("relu"),
    F.relu: _act("relu"),
    "relu": _act("relu"),
    "relu_": _act("relu"),
    F.relu6: _act("relu6"),
    F.silu: _act("silu"),
    F.hardswish: _act("hardswish"),
    F.hardsigmoid: _act("hardsigmoid"),
    torch.sigmoid: _act("sigmoid"),
    "sigmoid": _act("sigmoid"),
    F.sigmoid: _act("sigmoid"),
    torch.tanh: _act("tanh"),
    torch.exp: _act("exp"),
    F.gelu: _gelu_fn,
    torch.flatten: _flatten_fn,
    "flatten": _flatten_fn,
    "reshape": _reshape,
    "view": _reshape,
    torch.reshape: _reshape,
    "permute": _permute,
    torch.permute: _permute,
    "transpose": _transpose,
    torch.transpose: _transpose,
    "swapaxes": _transpose,
    torch.swapaxes: _transpose,
    torch.cat: _cat,
    torch.concat: _cat,
    F.adaptive_avg_pool2d: _adaptive_avgpool_fn,
    F.avg_pool2d: _pool_fn("avgpool"),
    torch._C._nn.avg_pool2d: _pool_fn("avgpool"),
    F.max_pool2d: _pool_fn("maxpool"),
    torch.max_pool2d: _pool_fn("maxpool"),
    "mean": _mean,
    torch.mean: _mean,
    torch.softmax: _softmax_fn,
    F.softmax: _softmax_fn,
    "softmax": _softmax_fn,
    F.normalize: _normalize,
    F.pad: _pad_fn,
    torch.matmul: _matmul,
    operator.matmul: _matmul,
    torch.bmm: _matmul,
    torch.einsum: _einsum,
    F.dropout: _dropout_fn,
    F.scaled_dot_product_attention: _sdpa,
    "contiguous": _alias,
    torch.addcmul: _addcmul,
    "reshape_as": _reshape_as,
    "chunk": _parts,
    torch.chunk: _parts,
    "split": _parts,
    torch.split: _parts,
    "expand": _expand,
    "expand_as": _expand,
    "unsqueeze": _unsqueeze,
    "squeeze": _unsqueeze,
    torch.unsqueeze: _unsqueeze,
    torch.squeeze: _unsqueeze,
    torch.stack: _stack,
    "sum": _sum,
    torch.sum: _sum,
    F.interpolate: _interpolate,
    "clone": _alias,
    operator.getitem: _getitem,
}

try:
    from torchvision.models import swin_transformer as _tv_swin

    FUNCTIONS[_tv_swin._patch_merging_pad] = _patch_merging
except ImportError:
    pass


def function_name(node: fx.Node) -> str:
    target = node.target
    if node.op == "call_method":
        return f"method Tensor.{target}"
    if isinstance(target, torch._ops.OpOverload):  # an ATen op of a torch.export capture
        return f"function {target.overloadpacket}"
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", str(target))
    return f"function {module + '.' if module else ''}{name}"


def map_function(node: fx.Node) -> Mapped:
    mapper = FUNCTIONS.get(node.target)
    if mapper is None:
        raise Unmapped(function_name(node))
    try:
        return mapper(node)
    except Unmapped:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        raise Unmapped(function_name(node), str(exc)) from exc


def parameter_item(value: torch.Tensor, trainable: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"op": "parameter", "shape": list(value.shape)}
    if not trainable:
        item["trainable"] = False
    return item


__all__ = [
    "FUNCTIONS",
    "METHOD_CALLS",
    "MODULES",
    "Mapped",
    "Unmapped",
    "map_function",
    "map_module",
]
