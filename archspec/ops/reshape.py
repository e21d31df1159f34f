"""Layout changes without arithmetic: flatten, permute, transpose, reshape and view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from archspec.ops.algebra import layout_of_rank
from archspec.ops.base import Op, ShapeError, Window, example, register
from archspec.shape import Shape

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
MAX_AXES = 6  # after the batch axis


def permuted(shape: Shape, dims: tuple[int, ...]) -> Shape:
    """`shape` after torch's permute(*dims) (dims[0] is the batch axis, which stays first). An
    image stays an image when its channel axis moves first or last and height stays before width
    (receptive fields are tracked per axis); any other order of an image, and any order of a
    generic tensor, is generic (ND). Token sequences and vectors are positional: (L,C) -> (C,L)
    is a sequence of C tokens."""
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
    if order.index(height) < order.index(width):
        if order[0] == channel:
            return Shape("CHW", sizes)
        if order[-1] == channel:
            return Shape("HWC", sizes)
    return Shape("ND", sizes)  # height and width swapped, or channels in the middle


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
        example({"dims": [0, 1, 3, 2]}, (3, 5, 4)),
        example({"dims": [0, 1, 3, 2, 4, 5]}, Shape("ND", (2, 3, 2, 3, 4))),
    )

    to: Literal["CHW", "HWC"] | None = None
    dims: Annotated[list[int], Field(min_length=1, max_length=MAX_AXES + 1)] | None = None

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

    def window(self, inputs: list[Shape]) -> Window:
        # an image that stays an image keeps its pixels in place; other orders move them
        order = self.order(inputs[0])
        return Window() if permuted(inputs[0], order).layout != "ND" else Window(whole=True)


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
    is a feature vector (1 size), a token sequence (2), an image (3; `layout: HWC` for
    channels-last, `layout: ND` for generic) or a generic tensor (4 to 6 sizes: heads,
    windows, grids)."""

    op = "reshape"
    method: ClassVar[str] = "reshape"
    examples = (
        example({"shape": [-1, 4]}, (8, 3, 3)),
        example({"shape": [6, 4]}, Shape("LC", (4, 6))),
        example({"shape": [-1]}, Shape("HWC", (2, 3, 4))),
        example({"shape": [8, 2, 3, 3, 1]}, (8, 6, 3)),
        example({"shape": [2, 4, 3], "layout": "ND"}, Shape("LC", (4, 6))),
    )

    shape: Annotated[
        list[Annotated[int, Field(ge=-1, le=1 << 30)]], Field(min_length=1, max_length=MAX_AXES)
    ]
    layout: Literal["CHW", "HWC", "ND"] | None = None

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
        if self.layout in ("CHW", "HWC") and len(sizes) != 3:
            raise ShapeError(f"layout {self.layout} needs 3 sizes; got {list(self.shape)}")
        return Shape(self.layout or layout_of_rank(len(sizes)), sizes)

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
