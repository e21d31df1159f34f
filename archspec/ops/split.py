"""Channel groups: split and chunk (each part read as `from: name.i`), narrow, channel_shuffle."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from archspec.ops.base import Op, PositiveInt, ShapeError, example, register
from archspec.shape import Shape

if TYPE_CHECKING:
    from torch import fx

TOKENS = Shape("LC", (5, 12))
CHANNELS_LAST = Shape("HWC", (3, 4, 12))


def channel_dim(shape: Shape) -> int:
    """The channel axis of a tensor with batch axis: 1 for (N,C,H,W), the last one otherwise."""
    return 1 if shape.layout == "CHW" else len(shape.dims)


class Parts(Op):
    """A split of the channels into parts; the node passes its input on whole and `name.i`
    reads part i (a `narrow` of the channels the graph builder adds)."""

    def part_sizes(self, channels: int) -> list[int]:
        raise NotImplementedError

    def infer(self, inputs: list[Shape]) -> Shape:
        self.part_sizes(inputs[0].channels)  # raises ShapeError on a bad split
        return inputs[0]

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        return args[0]

    def part(self, index: int, inputs: list[Shape]) -> Narrow:
        """Part `index` of this split of `inputs[0]`, as the op that reads it."""
        sizes = self.part_sizes(inputs[0].channels)
        if not 0 <= index < len(sizes):
            raise ShapeError(f"{self.op} makes {len(sizes)} parts (0 to {len(sizes) - 1})")
        return Narrow(start=sum(sizes[:index]), length=sizes[index])


@register
class Split(Parts):
    """Cut the channels into parts of the given `sizes` (which add up to the channels), or into
    parts of one size (the last one smaller if it does not divide), as torch.split; read part i
    as `from: name.i`."""

    op = "split"
    examples = (
        example({"sizes": [3, 5]}, (8, 5, 5)),
        example({"sizes": 5}, TOKENS),
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
    """Cut the channels into `chunks` parts of equal size (torch.chunk; the last one smaller if
    `chunks` does not divide them); read part i as `from: name.i`."""

    op = "chunk"
    examples = (example({"chunks": 2}, (8, 5, 5)), example({"chunks": 3}, CHANNELS_LAST))

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
    """The `length` channels from `start` on (torch.narrow along the channels): what `name.i`
    of a split or chunk reads."""

    op = "narrow"
    examples = (
        example({"start": 2, "length": 3}, (8, 5, 5)),
        example({"start": 0, "length": 4}, TOKENS),
    )

    start: Annotated[int, Field(ge=0, le=1 << 20)]
    length: PositiveInt

    def infer(self, inputs: list[Shape]) -> Shape:
        channels = inputs[0].channels
        if self.start + self.length > channels:
            raise ShapeError(
                f"channels {self.start} to {self.start + self.length} do not exist: the input "
                f"has {channels}"
            )
        return inputs[0].with_channels(self.length)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        index = [slice(None)] * (channel_dim(inputs[0]) + 1)
        index[-1] = slice(self.start, self.start + self.length)
        return graph.call_function(operator.getitem, (args[0], tuple(index)))


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
