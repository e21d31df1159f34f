"""Layout changes without arithmetic: flatten, permute, transpose, reshape and view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from archspec.ops.base import Op, ShapeError, Window, example, register
from archspec.shape import Layout, Shape

if TYPE_CHECKING:
    from torch import fx


@register
class Flatten(Op):
    """(N,C,H,W) -> (N,C*H*W): a feature vector for linear layers."""

    op = "flatten"
    examples = (example({}, (3, 4, 5)), example({}, Shape("LC", (4, 6))))

    def infer(self, inputs: list[Shape]) -> Shape:
        return Shape("C", (inputs[0].numel,))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        import torch

        return graph.call_function(torch.flatten, tuple(args), {"start_dim": 1})


_PERMUTATIONS = {("CHW", "HWC"): (0, 2, 3, 1), ("HWC", "CHW"): (0, 3, 1, 2)}
_RANK_LAYOUT: dict[int, Layout] = {1: "C", 2: "LC", 3: "CHW"}


def permuted(shape: Shape, dims: tuple[int, ...]) -> Shape:
    """`shape` after torch's permute(*dims) (dims[0] is the batch axis, which stays first). An
    image may move its channel axis first or last; height stays before width (receptive fields
    are tracked per axis). Token sequences and vectors are positional: (L,C) -> (C,L) is a
    sequence of C tokens."""
    rank = len(shape.dims) + 1
    if sorted(dims) != list(range(rank)) or dims[0] != 0:
        raise ShapeError(
            f"dims must be a permutation of 0..{rank - 1} keeping the batch axis 0 first "
            f"(the input is {shape.describe()}); got {list(dims)}"
        )
    sizes = tuple(shape.dims[d - 1] for d in dims[1:])
    if shape.layout not in ("CHW", "HWC"):
        return Shape(shape.layout, sizes)
    channel, height, width = (1, 2, 3) if shape.layout == "CHW" else (3, 1, 2)
    order = list(dims[1:])
    if order.index(height) > order.index(width):
        raise ShapeError("permute cannot swap the height and width of an image")
    if order[0] == channel:
        return Shape("CHW", sizes)
    if order[-1] == channel:
        return Shape("HWC", sizes)
    raise ShapeError("permute must put the channels of an image first (CHW) or last (HWC)")


@register
class Permute(Op):
    """Reorder the axes: `to: HWC` / `to: CHW` switches an image between channels-first
    (N,C,H,W) and channels-last (N,H,W,C); `dims` is torch's permute order, batch axis 0 first
    (`dims: [0, 2, 1]` turns (N,L,C) tokens into (N,C,L))."""

    op = "permute"
    examples = (
        example({"to": "HWC"}, (3, 5, 4)),
        example({"to": "CHW"}, Shape("HWC", (5, 4, 3))),
        example({"dims": [0, 2, 3, 1]}, (3, 5, 4)),
        example({"dims": [0, 2, 1]}, Shape("LC", (4, 6))),
    )

    to: Literal["CHW", "HWC"] | None = None
    dims: Annotated[list[int], Field(min_length=1, max_length=4)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Permute:
        if (self.to is None) == (self.dims is None):
            raise ValueError("permute takes either `to: CHW|HWC` or `dims: [0, ...]`")
        return self

    def order(self, shape: Shape) -> tuple[int, ...]:
        if self.dims is not None:
            return tuple(self.dims)
        if shape.layout not in ("CHW", "HWC"):
            raise ShapeError(f"`to: {self.to}` switches an image tensor; got {shape.describe()}")
        if shape.layout == self.to:
            raise ShapeError(f"input is already {shape.describe()}")
        return _PERMUTATIONS[(shape.layout, self.to)]

    def infer(self, inputs: list[Shape]) -> Shape:
        return permuted(inputs[0], self.order(inputs[0]))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        return graph.call_method("permute", (args[0], *self.order(inputs[0])))


@register
class Transpose(Op):
    """Swap two axes of a token sequence, torch's transpose(dim0, dim1): (N,L,C) -> (N,C,L)
    for token mixing (MLP-Mixer). Images change axes with permute."""

    op = "transpose"
    layouts = ("LC",)
    examples = (
        example({}, Shape("LC", (4, 6))),
        example({"dim0": -1, "dim1": -2}, Shape("LC", (4, 6))),
    )

    dim0: Literal[1, 2, -1, -2] = 1
    dim1: Literal[1, 2, -1, -2] = 2

    def infer(self, inputs: list[Shape]) -> Shape:
        a, b = self.dim0 % 3, self.dim1 % 3
        if a == b:
            raise ShapeError(f"dim0 and dim1 name the same axis ({self.dim0}, {self.dim1})")
        return permuted(inputs[0], (0, 2, 1))

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        return graph.call_method("transpose", (args[0], self.dim0, self.dim1))


@register
class Reshape(Op):
    """Give the elements after the batch axis a new `shape` (torch's reshape: a view where
    memory allows, a copy otherwise); one size may be -1, inferred from the rest. The result
    is a feature vector (1 size), a token sequence (2) or an image (3; `layout: HWC` for
    channels-last)."""

    op = "reshape"
    method: ClassVar[str] = "reshape"
    examples = (
        example({"shape": [-1, 4]}, (8, 3, 3)),
        example({"shape": [6, 4]}, Shape("LC", (4, 6))),
        example({"shape": [-1]}, Shape("HWC", (2, 3, 4))),
    )

    shape: Annotated[
        list[Annotated[int, Field(ge=-1, le=1 << 30)]], Field(min_length=1, max_length=3)
    ]
    layout: Literal["CHW", "HWC"] | None = None

    def sizes(self, numel: int) -> tuple[int, ...]:
        known = [s for s in self.shape if s != -1]
        product = 1
        for s in known:
            product *= s
        free = len(self.shape) - len(known)
        if free > 1 or 0 in known:
            raise ShapeError(f"shape {self.shape}: sizes must be >= 1, with at most one -1")
        if (free == 0 and product != numel) or (free == 1 and numel % product):
            raise ShapeError(f"cannot reshape {numel} elements to {self.shape}")
        return tuple(numel // product if s == -1 else s for s in self.shape)

    def infer(self, inputs: list[Shape]) -> Shape:
        sizes = self.sizes(inputs[0].numel)
        if self.layout is not None and len(sizes) != 3:
            raise ShapeError(f"layout {self.layout} needs 3 sizes; got {list(self.shape)}")
        return Shape(self.layout or _RANK_LAYOUT[len(sizes)], sizes)

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        sizes = self.sizes(inputs[0].numel)
        return graph.call_method(self.method, (args[0], -1, *sizes))

    def window(self, inputs: list[Shape]) -> Window:
        return Window(whole=True)  # pixels move: no field to track


@register
class View(Reshape):
    """Like reshape, but never copies: torch raises at run time on a non-contiguous input (after
    permute or transpose), where reshape would copy."""

    op = "view"
    method = "view"
    examples = (example({"shape": [-1, 4]}, (8, 3, 3)),)
