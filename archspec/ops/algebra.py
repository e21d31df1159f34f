"""Composable primitives: matmul, softmax, sdpa, normalize, scale, parameter,
relative_position_bias, attention_bias and identity. Attention variants (cosine attention,
learned logit scales, position-bias tables) are blocks of these."""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from archspec.ops.base import (
    POINTWISE,
    Op,
    PositiveInt,
    PositivePair,
    ShapeError,
    Window,
    example,
    pair,
    register,
)
from archspec.shape import Layout, Shape

if TYPE_CHECKING:
    import torch
    from torch import fx, nn

_RANKS = {"C": 1, "LC": 2, "CHW": 3, "HWC": 3}
MAX_AXES = 6  # axes after the batch axis that reshape, permute and parameter accept
Dim = Annotated[int, Field(ge=-MAX_AXES - 1, le=MAX_AXES)]  # a torch dim, batch axis 0 included
Finite = Annotated[float, Field(ge=-1e6, le=1e6)]


def layout_of_rank(rank: int) -> Layout:
    """The layout a tensor of `rank` axes after the batch axis gets when nothing says more."""
    return {1: "C", 2: "LC", 3: "CHW"}.get(rank, "ND")


def axis_of(dim: int, shape: Shape) -> int:
    """torch's `dim` (batch axis 0, negatives from the end) as an index into shape.dims."""
    rank = len(shape.dims) + 1
    if not -rank <= dim < rank or dim % rank == 0:
        raise ShapeError(
            f"dim {dim} must name an axis after the batch axis (1..{rank - 1} or "
            f"-1..-{rank - 1}) of {shape.describe()} {shape}"
        )
    return dim % rank - 1


def _along(shape: Shape, axis: int) -> tuple[Window, Window]:
    """Windows of an op that mixes values along one axis: whole on that axis if spatial."""
    if shape.layout not in ("CHW", "HWC"):
        return POINTWISE, POINTWISE
    height = 1 if shape.layout == "CHW" else 0
    return (
        Window(whole=True) if axis == height else POINTWISE,
        Window(whole=True) if axis == height + 1 else POINTWISE,
    )


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y))
    return tuple(reversed(out))


@register
class Matmul(Op):
    """Batched matrix product of two inputs, torch's `a @ b` (`transpose_b: true` for
    `a @ b.transpose(-2, -1)`, attention's q k^T): (..., n, k) @ (..., k, m) -> (..., n, m),
    leading axes broadcast. The result is a token sequence (2 axes) or generic (more)."""

    op = "matmul"
    arity = 2
    examples = (
        example({}, Shape("LC", (4, 6)), Shape("LC", (6, 3))),
        example({"transpose_b": True}, Shape("ND", (2, 5, 3)), Shape("ND", (2, 4, 3))),
        example({}, Shape("ND", (2, 5, 3)), Shape("ND", (1, 3, 4))),
    )

    transpose_b: bool = False

    def _matrices(self, inputs: list[Shape]) -> tuple[tuple[int, ...], int, int, int]:
        a, b = (s.dims for s in inputs)
        if len(a) < 2 or len(b) < 2:
            raise ShapeError(f"matmul needs two axes or more after the batch axis; got {a}, {b}")
        if self.transpose_b:
            b = (*b[:-2], b[-1], b[-2])
        lead = _broadcast(a[:-2], b[:-2])
        if a[-1] != b[-2] or lead is None:
            raise ShapeError(
                f"cannot multiply {inputs[0]} by {inputs[1]}"
                + (" transposed" if self.transpose_b else "")
                + f" (inner sizes {a[-1]} and {b[-2]})"
            )
        return lead, a[-2], a[-1], b[-1]

    def infer(self, inputs: list[Shape]) -> Shape:
        lead, n, _, m = self._matrices(inputs)
        dims = (*lead, n, m)
        return Shape("LC" if len(dims) == 2 else "ND", dims)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        import torch

        b = args[1]
        if self.transpose_b:
            b = graph.call_method("transpose", (b, -2, -1))
        return graph.call_function(torch.matmul, (args[0], b))

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        lead, n, k, m = self._matrices(inputs)
        return math.prod(lead) * n * k * m

    def window(self, inputs: list[Shape]) -> Window:
        return Window(whole=True)


@register
class Softmax(Op):
    """softmax along `dim` (torch's dim: the batch axis is 0, -1 the last axis)."""

    op = "softmax"
    examples = (
        example({}, Shape("ND", (2, 4, 4))),
        example({"dim": 1}, (3, 5, 5)),
        example({"dim": -1}, (3, 5, 5)),
    )

    dim: Dim = -1

    def infer(self, inputs: list[Shape]) -> Shape:
        axis_of(self.dim, inputs[0])
        return inputs[0]

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        import torch

        return graph.call_function(torch.softmax, (args[0], self.dim))

    def windows(self, inputs: list[Shape]) -> tuple[Window, Window]:
        return _along(inputs[0], axis_of(self.dim, inputs[0]))


@register
class Sdpa(Op):
    """Scaled dot-product attention of q, k, v, torch's F.scaled_dot_product_attention:
    softmax(q k^T * scale + bias) v, with q (..., L, E), k (..., S, E), v (..., S, Ev) ->
    (..., L, Ev), leading axes (batch, heads) broadcast. `scale` defaults to E**-0.5; an
    optional fourth input is an additive bias broadcast to (..., L, S); `is_causal` masks
    the keys after each query. What timm's and torchvision's attention blocks call between
    their q, k, v and output projections."""

    op = "sdpa"
    arity = None
    examples = (
        example({}, Shape("ND", (2, 5, 4)), Shape("ND", (2, 6, 4)), Shape("ND", (2, 6, 3))),
        example({"scale": 0.5, "is_causal": True}, *[Shape("LC", (5, 4))] * 3),
        example(
            {},
            Shape("ND", (2, 5, 4)),
            Shape("ND", (2, 5, 4)),
            Shape("ND", (2, 5, 4)),
            Shape("ND", (2, 5, 5)),
        ),
    )

    scale: Annotated[float, Field(gt=0.0, le=1e6)] | None = None
    is_causal: bool = False

    def check_inputs(self, inputs: list[Shape]) -> None:
        if len(inputs) not in (3, 4):
            raise ShapeError(f"sdpa takes q, k, v and an optional bias; got {len(inputs)} inputs")

    def _sizes(self, inputs: list[Shape]) -> tuple[tuple[int, ...], int, int, int, int]:
        """(leading axes, L, S, E, Ev)"""
        q, k, v = (s.dims for s in inputs[:3])
        if min(len(q), len(k), len(v)) < 2:
            raise ShapeError(f"sdpa needs two axes or more after the batch axis; got {q}, {k}, {v}")
        lead = _broadcast(_broadcast(q[:-2], k[:-2]) or (), v[:-2])
        if q[-1] != k[-1] or k[-2] != v[-2] or lead is None or _broadcast(q[:-2], k[:-2]) is None:
            raise ShapeError(
                f"sdpa cannot attend with q {inputs[0]}, k {inputs[1]}, v {inputs[2]} (q and k "
                "share their last size, k and v their second last)"
            )
        length, keys = q[-2], k[-2]
        if len(inputs) == 4 and _broadcast(inputs[3].dims, (*lead, length, keys)) != (
            *lead,
            length,
            keys,
        ):
            raise ShapeError(f"the bias {inputs[3]} does not broadcast to {(*lead, length, keys)}")
        return lead, length, keys, q[-1], v[-1]

    def infer(self, inputs: list[Shape]) -> Shape:
        lead, length, _, _, value = self._sizes(inputs)
        dims = (*lead, length, value)
        return Shape("LC" if len(dims) == 2 else "ND", dims)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        import torch.nn.functional as F

        kwargs: dict[str, object] = {"attn_mask": args[3] if len(args) == 4 else None}
        if self.is_causal:
            kwargs["is_causal"] = True
        if self.scale is not None:
            kwargs["scale"] = self.scale
        return graph.call_function(F.scaled_dot_product_attention, tuple(args[:3]), kwargs)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        lead, length, keys, channels, value = self._sizes(inputs)
        return math.prod(lead) * length * keys * (channels + value)  # q k^T, then weights @ v

    def window(self, inputs: list[Shape]) -> Window:
        return Window(whole=True)


@register
class Normalize(Op):
    """x / max(||x||_p, eps) along `dim`, torch's F.normalize (cosine attention's q and k)."""

    op = "normalize"
    examples = (
        example({}, Shape("ND", (2, 4, 3))),
        example({"dim": 1, "p": 1.0}, (3, 5, 5)),
    )

    p: Annotated[float, Field(gt=0.0, le=1e3)] = 2.0
    dim: Dim = -1
    eps: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-12

    def infer(self, inputs: list[Shape]) -> Shape:
        axis_of(self.dim, inputs[0])
        return inputs[0]

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        import torch.nn.functional as F

        kwargs = {"p": self.p, "dim": self.dim, "eps": self.eps}
        return graph.call_function(F.normalize, (args[0],), kwargs)

    def windows(self, inputs: list[Shape]) -> tuple[Window, Window]:
        return _along(inputs[0], axis_of(self.dim, inputs[0]))


class _Reduction(Op):
    """The shape rule of mean and sum along one axis: the axis goes (or stays as size 1 with
    `keepdim`), and what is left is read by its rank."""

    method: ClassVar[str]
    # a generic input reduced to 3 axes: an (N,C,H,W) image (the sum of stacked paths), or
    # still generic
    image: ClassVar[bool] = False

    dim: Dim = 1
    keepdim: bool = False

    def infer(self, inputs: list[Shape]) -> Shape:
        shape = inputs[0]
        axis = axis_of(self.dim, shape)
        if self.keepdim:
            return Shape(
                shape.layout, tuple(1 if i == axis else d for i, d in enumerate(shape.dims))
            )
        dims = tuple(d for i, d in enumerate(shape.dims) if i != axis)
        if not dims:
            raise ShapeError(f"{self.op} over the only axis of {shape.describe()} leaves nothing")
        if shape.layout == "ND" and not (self.image and len(dims) == 3):
            return Shape("ND", dims)
        return Shape(layout_of_rank(len(dims)), dims)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        return graph.call_method(self.method, (args[0], self.dim), {"keepdim": self.keepdim})

    def windows(self, inputs: list[Shape]) -> tuple[Window, Window]:
        return _along(inputs[0], axis_of(self.dim, inputs[0]))


@register
class Mean(_Reduction):
    """Mean along `dim` (torch's dim, batch axis 0): `dim: 1` averages the tokens of an (N,L,C)
    sequence into (N,C), as MLP-Mixer's head does; `keepdim: true` keeps the axis as size 1."""

    op = "mean"
    method = "mean"
    examples = (
        example({"dim": 1}, Shape("LC", (4, 6))),
        example({"dim": -1, "keepdim": True}, (3, 4, 5)),
    )


@register
class Sum(_Reduction):
    """Sum along `dim` (torch's dim, batch axis 0): the split attention of ResNeSt and SKNet
    adds its paths, stacked as (N, paths, C, H, W), with `dim: 1` into an (N,C,H,W) image;
    `keepdim: true` keeps the axis as size 1."""

    op = "sum"
    method = "sum"
    image = True
    examples = (
        example({"dim": 1}, Shape("ND", (2, 3, 4, 4))),
        example({"dim": 1, "keepdim": True}, Shape("LC", (4, 6))),
    )


@register
class Scale(Op):
    """Multiply by a constant `value` (`value: 0.125` for attention's C**-0.5), or by a learned
    `scalar` or per-channel `channels` vector initialised to `value` (logit and layer scales;
    stored as (C, 1, 1) on an image, (C,) otherwise)."""

    op = "scale"
    examples = (
        example({"value": 0.5}, (3, 4, 4)),
        example({"learned": "scalar", "value": 2.0}, Shape("LC", (4, 6))),
        example({"learned": "channels", "value": 1e-6}, (3, 4, 4)),
        example({"learned": "channels"}, Shape("ND", (2, 4, 3))),
    )

    value: Finite = 1.0
    learned: Literal["none", "scalar", "channels"] = "none"

    def _size(self, shape: Shape) -> tuple[int, ...]:
        if self.learned == "scalar":
            return ()
        return (shape.channels, 1, 1) if shape.layout == "CHW" else (shape.channels,)

    def build(self, inputs: list[Shape]) -> nn.Parameter | None:
        if self.learned == "none":
            return None
        import torch

        return torch.nn.Parameter(torch.full(self._size(inputs[0]), self.value))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        factor = self.value if self.learned == "none" else graph.get_attr(target)
        return graph.call_function(operator.mul, (args[0], factor))

    def count_params(self, inputs: list[Shape]) -> int:
        return 0 if self.learned == "none" else math.prod(self._size(inputs[0]))


@register
class Parameter(Op):
    """A learned tensor of a given `shape` (position-bias tables, tokens, logit scales): its
    value, not its input, is the output. A leading 1 in `shape` is the batch axis (a (1, L, C)
    token table is (L,C) tokens); otherwise the forward adds one. The forward expands it to the
    batch of its input (a view, no copy), which is all it reads of that input. `init`: zeros,
    ones, `constant` (= value), `normal` (std) or `log` (log of value, Swin V2's logit scale);
    `trainable: false` stores it as a buffer."""

    op = "parameter"
    examples = (
        example({"shape": [1, 4, 6]}, Shape("LC", (4, 6))),
        example({"shape": [3, 1, 1], "init": "log", "value": 10.0}, Shape("ND", (3, 4, 4))),
        example({"shape": [5], "trainable": False, "init": "ones"}, Shape("C", (2,))),
    )

    shape: Annotated[list[Annotated[int, Field(ge=1, le=1 << 24)]], Field(min_length=1)]
    init: Literal["zeros", "ones", "constant", "normal", "log"] = "zeros"
    value: Finite = 0.0
    std: Annotated[float, Field(gt=0.0, le=10.0)] = 0.02
    layout: Layout | None = None
    trainable: bool = True

    @model_validator(mode="after")
    def _rank(self) -> Parameter:
        if len(self.shape) > MAX_AXES + 1:
            raise ValueError(f"shape takes at most {MAX_AXES + 1} sizes")
        if self.init == "log" and self.value <= 0:
            raise ValueError("init: log needs a value > 0")
        return self

    def _dims(self) -> tuple[int, ...]:
        dims = tuple(self.shape)
        return dims[1:] if dims[0] == 1 and len(dims) > 1 else dims

    def infer(self, inputs: list[Shape]) -> Shape:
        dims = self._dims()
        layout = self.layout or layout_of_rank(len(dims))
        if len(dims) > MAX_AXES:
            raise ShapeError(f"shape {self.shape}: at most {MAX_AXES} axes after the batch axis")
        if layout != "ND" and len(dims) != _RANKS[layout]:
            raise ShapeError(f"layout {layout} needs {_RANKS[layout]} sizes; got {list(dims)}")
        return Shape(layout, dims)

    def build(self, inputs: list[Shape]) -> nn.Parameter | torch.Tensor:
        import torch

        size = tuple(self.shape)
        if self.init == "normal":
            value = torch.empty(size).normal_(std=self.std)
        else:
            fill = {"zeros": 0.0, "ones": 1.0, "constant": self.value}.get(self.init)
            value = torch.full(size, math.log(self.value) if fill is None else fill)
        return torch.nn.Parameter(value) if self.trainable else value

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        value = graph.get_attr(target)
        if self.shape[0] != 1 or len(self.shape) == 1:
            value = graph.call_method("unsqueeze", (value, 0))
        batch = graph.call_method("size", (args[0], 0))
        return graph.call_method("expand", (value, batch, *[-1] * len(self._dims())))

    def count_params(self, inputs: list[Shape]) -> int:
        return math.prod(self.shape) if self.trainable else 0


@register
class RelativePositionBias(Op):
    """The relative position bias of attention inside an h x w window (Swin, MaxViT), gathered
    from its input, a table with a row per offset between two tokens and a column per head.
    The table ((2h-1)(2w-1), heads) is usually a `parameter`; the output is
    bias[head, i, j] = table[index[i, j], head], shaped (1, heads, h*w, h*w) so that it adds to
    the (windows, heads, h*w, h*w) attention logits. The fixed (h*w, h*w) index is a buffer at
    this node's name: torchvision names it `relative_position_index`; `saved: false` keeps it
    out of the state_dict, as timm's MaxxViT and CoAtNet do."""

    op = "relative_position_bias"
    layouts = ("LC",)
    examples = (
        example({"window_size": 2}, Shape("LC", (9, 3))),
        example({"window_size": [2, 3], "saved": False}, Shape("LC", (15, 2))),
    )

    window_size: PositivePair
    saved: bool = True

    def tokens(self) -> int:
        h, w = pair(self.window_size)
        return h * w

    def infer(self, inputs: list[Shape]) -> Shape:
        h, w = pair(self.window_size)
        rows, heads = inputs[0].dims
        if rows != (2 * h - 1) * (2 * w - 1):
            raise ShapeError(
                f"a {h}x{w} window has (2*{h}-1)*(2*{w}-1) = {(2 * h - 1) * (2 * w - 1)} "
                f"relative positions; the table has {rows} rows"
            )
        return Shape("ND", (1, heads, self.tokens(), self.tokens()))

    def build(self, inputs: list[Shape]) -> torch.Tensor:
        from archspec.ops.modules import relative_position_index

        return relative_position_index(pair(self.window_size)).view(self.tokens(), self.tokens())

    def saves_buffer(self) -> bool:
        return self.saved

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        # (N, rows, heads)[:, (P, P)] -> (N, P, P, heads) -> (N, 1, heads, P, P)
        index = graph.get_attr(target)
        bias = graph.call_function(operator.getitem, (args[0], (slice(None), index)))
        bias = graph.call_method("permute", (bias, 0, 3, 1, 2))
        return graph.call_method("unsqueeze", (bias, 1))


@register
class AttentionBias(Op):
    """LeViT's and EfficientFormer's attention bias: a learned value per head and absolute
    offset (|dy|, |dx|) between a query and a key of an h x w grid. It is gathered from its
    input, the (heads, h*w) table (usually a `parameter`): bias[head, i, j] = table[head, |dy| *
    w + |dx|], shaped (heads, queries, h*w) to add to the attention logits. With `stride` > 1 the
    queries sit on every stride-th row and column (LeViT's subsampling attention). The fixed
    index is a buffer at this node's name (timm's `attention_bias_idxs`); `saved: false`
    keeps it out of the state_dict, as LeViT does."""

    op = "attention_bias"
    layouts = ("LC",)
    examples = (
        example({"resolution": 3}, Shape("LC", (2, 9))),
        example({"resolution": [4, 3], "stride": 2, "saved": False}, Shape("LC", (2, 12))),
    )

    resolution: PositivePair
    stride: PositiveInt = 1
    saved: bool = True

    def infer(self, inputs: list[Shape]) -> Shape:
        h, w = pair(self.resolution)
        heads, size = inputs[0].dims
        if size != h * w:
            raise ShapeError(f"a {h}x{w} grid has {h * w} offsets; the table has {size} columns")
        queries = -(-h // self.stride) * -(-w // self.stride)
        return Shape("ND", (heads, queries, h * w))

    def build(self, inputs: list[Shape]) -> torch.Tensor:
        from archspec.ops.modules import attention_bias_index

        return attention_bias_index(pair(self.resolution), self.stride)

    def saves_buffer(self) -> bool:
        return self.saved

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        index = graph.get_attr(target)  # (queries, h*w): (N, heads, h*w) -> (N, heads, q, h*w)
        return graph.call_function(operator.getitem, (args[0], (slice(None), slice(None), index)))


@register
class Identity(Op):
    """Its input, unchanged (torch's nn.Identity): a named place for a removed layer."""

    op = "identity"
    examples = (example({}, (3, 4, 4)), example({}, Shape("LC", (4, 6))))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        return args[0]
