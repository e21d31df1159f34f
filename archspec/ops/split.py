"""Parts of a tensor: split and chunk (each part read as `from: name.i`) and narrow, along the
channels or another axis; select (one index of an axis); channel_shuffle."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from archspec.ops.algebra import Dim, axis_of, layout_of_rank
from archspec.ops.base import Op, PositiveInt, ShapeError, example, register
from archspec.shape import Shape

if TYPE_CHECKING:
    from torch import fx

TOKENS = Shape("LC", (5, 12))
CHANNELS_LAST = Shape("HWC", (3, 4, 12))
HEADS = Shape("ND", (5, 2, 12))  # (L, heads, head channels)


def channel_dim(shape: Shape) -> int:
    """The channel axis of a tensor with batch axis: 1 for (N,C,H,W), the last one otherwise."""
    return 1 if shape.layout == "CHW" else len(shape.dims)


def along(dim: int | None, shape: Shape) -> int:
    """The torch dim (batch axis 0) that `dim` names; None: the channel axis."""
    return channel_dim(shape) if dim is None else axis_of(dim, shape) + 1


class Parts(Op):
    """A split of the channels (or of axis `dim`) into parts; the node passes its input on
    whole and `name.i` reads part i (a `narrow` the graph builder adds)."""

    dim: Dim | None = None  # torch's dim, batch axis 0; None: the channel axis

    def part_sizes(self, channels: int) -> list[int]:
        raise NotImplementedError

    def _size(self, shape: Shape) -> int:
        return shape.dims[along(self.dim, shape) - 1]

    def infer(self, inputs: list[Shape]) -> Shape:
        self.part_sizes(self._size(inputs[0]))  # raises ShapeError on a bad split
        return inputs[0]

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        return args[0]

    def part(self, index: int, inputs: list[Shape]) -> Narrow:
        """Part `index` of this split of `inputs[0]`, as the op that reads it."""
        sizes = self.part_sizes(self._size(inputs[0]))
        if not 0 <= index < len(sizes):
            raise ShapeError(f"{self.op} makes {len(sizes)} parts (0 to {len(sizes) - 1})")
        return Narrow(start=sum(sizes[:index]), length=sizes[index], dim=self.dim)


@register
class Split(Parts):
    """Cut the channels into parts of the given `sizes` (which add up to the channels), or into
    parts of one size (the last one smaller if it does not divide), as torch.split; read part i
    as `from: name.i`. `dim` splits another axis (LeViT's q, k, v along the head channels)."""

    op = "split"
    examples = (
        example({"sizes": [3, 5]}, (8, 5, 5)),
        example({"sizes": 5}, TOKENS),
        example({"sizes": [4, 4, 4], "dim": 3}, HEADS),
    )

    sizes: PositiveInt | Annotated[list[PositiveInt], Field(min_length=1, max_length=1024)]

    def part_sizes(self, channels: int) -> list[int]:
        if isinstance(self.sizes, int):
            size = self.sizes
            return [min(size, channels - start) for start in range(0, channels, size)]
        if sum(self.sizes) != channels:
            raise ShapeError(
                f"split sizes {self.sizes} add up to {sum(self.sizes)}, not to the input's "
                f"{channels} channels"
            )
        return list(self.sizes)


@register
class Chunk(Parts):
    """Cut the channels (or axis `dim`) into `chunks` parts of equal size (torch.chunk; the
    last one smaller if `chunks` does not divide them); read part i as `from: name.i`."""

    op = "chunk"
    examples = (
        example({"chunks": 2}, (8, 5, 5)),
        example({"chunks": 3}, CHANNELS_LAST),
        example({"chunks": 2, "dim": 1}, TOKENS),
    )

    chunks: Annotated[int, Field(ge=1, le=1024)]

    def part_sizes(self, channels: int) -> list[int]:
        size = -(-channels // self.chunks)
        sizes = [min(size, channels - start) for start in range(0, channels, size)]
        if len(sizes) != self.chunks:
            raise ShapeError(
                f"torch.chunk cuts {channels} channels into {len(sizes)} parts of {size}, not "
                f"{self.chunks}; use split with explicit sizes"
            )
        return sizes


@register
class Narrow(Op):
    """The `length` channels (or entries of axis `dim`) from `start` on, torch.narrow: what
    `name.i` of a split or chunk reads."""

    op = "narrow"
    examples = (
        example({"start": 2, "length": 3}, (8, 5, 5)),
        example({"start": 0, "length": 4}, TOKENS),
        example({"start": 4, "length": 8, "dim": -1}, HEADS),
    )

    start: Annotated[int, Field(ge=0, le=1 << 20)]
    length: PositiveInt
    dim: Dim | None = None  # torch's dim, batch axis 0; None: the channel axis

    def infer(self, inputs: list[Shape]) -> Shape:
        axis = along(self.dim, inputs[0]) - 1
        size = inputs[0].dims[axis]
        if self.start + self.length > size:
            what = "channels" if self.dim is None else f"entries of dim {self.dim}"
            raise ShapeError(
                f"{what} {self.start} to {self.start + self.length} do not exist: the input "
                f"has {size}"
            )
        dims = list(inputs[0].dims)
        dims[axis] = self.length
        return Shape(inputs[0].layout, tuple(dims))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        index = [slice(None)] * (along(self.dim, inputs[0]) + 1)
        index[-1] = slice(self.start, self.start + self.length)
        return graph.call_function(operator.getitem, (args[0], tuple(index)))


@register
class Select(Op):
    """Entry `index` of axis `dim`, dropping that axis (torch.select; ViT's q, k, v from the
    stacked qkv projection, `qkv.unbind(0)` in timm); `select_token` is this along the tokens.
    The result keeps a generic tensor generic; otherwise its rank names its layout."""

    op = "select"
    examples = (
        example({"dim": 2, "index": 1}, Shape("ND", (5, 3, 2, 4))),
        example({"dim": -1, "index": -1}, TOKENS),
        example({"dim": 1, "index": 0}, (3, 4, 5)),
    )

    dim: Dim
    index: Annotated[int, Field(ge=-(1 << 20), lt=1 << 20)]

    def infer(self, inputs: list[Shape]) -> Shape:
        shape = inputs[0]
        axis = axis_of(self.dim, shape)
        if not -shape.dims[axis] <= self.index < shape.dims[axis]:
            raise ShapeError(
                f"index {self.index} is outside dim {self.dim} of size {shape.dims[axis]}"
            )
        dims = tuple(d for i, d in enumerate(shape.dims) if i != axis)
        if not dims:
            raise ShapeError(f"select from the only axis of {shape.describe()} leaves nothing")
        return Shape("ND" if shape.layout == "ND" else layout_of_rank(len(dims)), dims)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        return graph.call_method("select", (args[0], self.dim, self.index))


@register
class ChannelShuffle(Op):
    """ShuffleNet's channel shuffle: channels (g0c0, g0c1, ..., g1c0, ...) become
    (g0c0, g1c0, ..., g0c1, g1c1, ...) for `groups` groups."""

    op = "channel_shuffle"
    layouts = ("CHW", "HWC")
    examples = (example({"groups": 2}, (8, 3, 3)), example({"groups": 3}, CHANNELS_LAST))

    groups: Annotated[int, Field(ge=1, le=1 << 20)]

    def infer(self, inputs: list[Shape]) -> Shape:
        if inputs[0].channels % self.groups:
            raise ShapeError(f"groups={self.groups} must divide the {inputs[0].channels} channels")
        return inputs[0]

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        from archspec.ops.modules import channel_shuffle

        return graph.call_function(channel_shuffle, (args[0], self.groups, channel_dim(inputs[0])))
