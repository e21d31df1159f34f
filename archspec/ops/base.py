"""The op contract and registry: each op class owns its parameters, shape, cost and torch code."""

from __future__ import annotations

import importlib
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationInfo, WithJsonSchema

from archspec.shape import Layout, Shape

if TYPE_CHECKING:  # torch is imported where a module is built, so validate stays torch-free
    import torch
    from torch import fx, nn


class ShapeError(ValueError):
    """An op cannot accept its input shapes; the graph builder adds the node and location."""


@dataclass(frozen=True)
class Scalable:
    """Marks a field that the scaling pass rewrites: by `width`, or by a `kernel` choice."""

    axis: str


def scalable_axis(field: Any) -> str | None:
    """'width' or 'kernel' when a pydantic field is marked Scalable (also inside Optional)."""
    for meta in field.metadata:
        if isinstance(meta, Scalable):
            return meta.axis
    for arg in typing.get_args(field.annotation):
        for meta in getattr(arg, "__metadata__", ()):
            if isinstance(meta, Scalable):
                return meta.axis
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def pair_of(low: int, high: int, words: tuple[str, ...] = ()) -> Any:
    """An int or an [h, w] pair of ints in [low, high] (or one of `words`), as torch's conv and
    pool arguments; stored as an int, an (h, w) tuple or the word; read both axes with `pair()`."""
    allowed = "an int or [h, w]" + "".join(f", {w!r}" for w in words)

    def validate(value: Any, info: ValidationInfo) -> int | tuple[int, int] | str:
        field = info.field_name or "it"
        if isinstance(value, str) and value in words:
            return value
        if _is_int(value):
            items = [value]
        elif isinstance(value, (list, tuple)) and len(value) == 2 and all(map(_is_int, value)):
            items = list(value)
        else:
            raise ValueError(f"{field} takes {allowed}")
        if not all(low <= v <= high for v in items):
            raise ValueError(f"{field} takes values from {low} to {high}")
        return value if len(items) == 1 else (items[0], items[1])

    item = {"type": "integer", "minimum": low, "maximum": high}
    options: list[dict[str, Any]] = [
        item,
        {"type": "array", "items": item, "minItems": 2, "maxItems": 2},
    ]
    if words:
        options.append({"enum": list(words)})
    kind = int | tuple[int, int] | str if words else int | tuple[int, int]
    return Annotated[kind, PlainValidator(validate), WithJsonSchema({"anyOf": options})]


Channels = Annotated[int, Field(ge=1, le=1 << 20), Scalable("width")]
Kernel = Annotated[int, Field(ge=1, le=1024), Scalable("kernel")]
KernelPair = Annotated[pair_of(1, 1024), Scalable("kernel")]
PositiveInt = Annotated[int, Field(ge=1, le=1 << 20)]
PositivePair = pair_of(1, 1 << 20)
SizePair = pair_of(0, 1 << 20)  # paddings, offsets
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]


@dataclass(frozen=True)
class Window:
    """How an op maps input pixels to output pixels, for receptive fields (per spatial axis)."""

    kernel: int = 1
    stride: int = 1  # 1/s for an upsampling by s (each input pixel feeds s output units)
    dilation: int = 1
    padding: int = 0
    whole: bool = False  # every output unit sees the whole input (global pooling, attention)


POINTWISE = Window()


@dataclass(frozen=True)
class Example:
    """One valid use of an op: its parameters and input shapes. Every op declares a few; the
    op contract test (tests/ops/test_contract.py) builds and checks each, `archspec ops` shows
    them."""

    params: dict[str, Any]
    inputs: tuple[Shape, ...]


def example(params: dict[str, Any], *inputs: Shape | tuple[int, ...]) -> Example:
    """`example({"kernel_size": 3}, (8, 9, 9))`: a bare tuple is an (N,C,H,W) image's (C,H,W)."""
    shapes = tuple(s if isinstance(s, Shape) else Shape("CHW", tuple(s)) for s in inputs)
    return Example(params, shapes)


class Op(BaseModel):
    """Base of every op. Subclasses set `op`, declare their parameters as pydantic fields and
    implement `infer` (output shape) and `build` (torch module or parameter, or None)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    op: ClassVar[str]
    arity: ClassVar[int | None] = 1  # None: two or more inputs (merges)
    layouts: ClassVar[tuple[Layout, ...] | None] = None  # accepted input layouts; None = any
    normalizes: ClassVar[bool] = False  # a normalization layer (for `archspec lint`)
    examples: ClassVar[tuple[Example, ...]] = ()  # valid uses, for the contract test and docs
    # An SE-style gate: each output is also scaled by a summary of the whole input, which the
    # receptive field leaves out (as receptive-field analyses do); the local path is `windows`.
    global_gate: ClassVar[bool] = False
    # In-place rewrites where torchvision's hand-written modules use them (`ReLU(inplace=True)`
    # after BatchNorm, `out += identity`): an `in_place` op overwrites its first input when
    # that input comes from an `overwritable` op (a fresh tensor that no backward needs) and
    # has no other reader. Saves an allocation per activation and per residual add.
    in_place: ClassVar[bool] = False  # can overwrite its first input: implements emit_in_place
    overwritable: ClassVar[bool] = False  # its output may be overwritten by its only reader

    # `archspec import`: the torch module classes this op stands for, by qualified name
    # ("mypkg.layers.ScaledTanh"); such a module is traced as one call and becomes this op,
    # with the fields `fields_of(module)` reads off it (its state_dict names must be the op's).
    imports: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def fields_of(cls, module: nn.Module) -> dict[str, Any]:
        """This op's parameters for one instance of a module class in `imports`."""
        return {}

    # --- shape -----------------------------------------------------------------------------
    def infer(self, inputs: list[Shape]) -> Shape:
        return inputs[0]

    # --- torch -----------------------------------------------------------------------------
    def build(self, inputs: list[Shape]) -> nn.Module | torch.Tensor | None:
        """The state this op owns at its node name (a module, a parameter, a buffer) or None."""
        return None

    def saves_buffer(self) -> bool:
        """Whether a buffer `build` returns goes into the state_dict (torch's `persistent`);
        a fixed index that the op can always recompute may stay out, as LeViT's does."""
        return True

    def emit(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        """Add this op's forward code to `graph`; the default calls the module built at `target`."""
        return graph.call_module(target, tuple(args))

    def emit_in_place(
        self, graph: fx.Graph, args: list[fx.Node], target: str, inputs: list[Shape]
    ) -> fx.Node:
        """Like `emit`, overwriting args[0] (the compiler checked that it may)."""
        raise NotImplementedError(f"{self.op} declares in_place but has no emit_in_place")

    # --- cost ------------------------------------------------------------------------------
    def count_params(self, inputs: list[Shape]) -> int:
        return 0

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        """Multiply-accumulates per sample of the matmul/conv/attention work (what
        FlopCounterMode counts); elementwise work is not counted."""
        return 0

    def window(self, inputs: list[Shape]) -> Window:
        """The receptive-field effect of a square op; ops with [h, w] pairs define `windows`."""
        return POINTWISE

    def windows(self, inputs: list[Shape]) -> tuple[Window, Window]:
        """The receptive-field effect along height and width."""
        window = self.window(inputs)
        return window, window

    def check_inputs(self, inputs: list[Shape]) -> None:
        """Generic checks from the class variables; raises ShapeError."""
        if self.arity is None and len(inputs) < 2:
            raise ShapeError(f"{self.op} merges two or more inputs; got {len(inputs)}")
        if self.arity is not None and len(inputs) != self.arity:
            raise ShapeError(f"{self.op} takes {self.arity} input(s); got {len(inputs)}")
        if self.layouts is not None:
            for shape in inputs:
                if shape.layout not in self.layouts:
                    raise ShapeError(_layout_message(self.op, shape, self.layouts))


def _layout_message(op: str, shape: Shape, layouts: tuple[Layout, ...]) -> str:
    wanted = " or ".join(Shape(lay, ()).describe() for lay in layouts)
    hint = ""
    if op in ("linear", "mlp") and shape.layout == "CHW":
        hint = "; add flatten or adaptive_avgpool first (or permute to channels-last)"
    elif shape.layout == "HWC" and "CHW" in layouts:
        hint = "; add {op: permute, to: CHW} first"
    elif shape.layout == "CHW" and "HWC" in layouts:
        hint = "; add {op: permute, to: HWC} first"
    elif shape.layout in ("LC", "C") and "CHW" in layouts:
        hint = "; this op needs an image tensor (N,C,H,W)"
    return f"{op} expects {wanted}; got {shape.describe()} {shape}{hint}"


REGISTRY: dict[str, type[Op]] = {}


def register(cls: type[Op]) -> type[Op]:
    """Class decorator adding an op to the registry; names are unique."""
    name = cls.op
    if name in REGISTRY and REGISTRY[name] is not cls:
        raise ValueError(f"op {name!r} is already registered by {REGISTRY[name].__qualname__}")
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"op name {name!r} must be a lowercase identifier")
    REGISTRY[name] = cls
    return cls


def torch_function(path: str) -> Callable[..., Any]:
    """The function at a dotted path such as "torch.relu" or "torch.nn.functional.silu". Ops name
    the torch functions their forward calls as strings, resolved when code is generated, so that
    importing the op registry does not import torch."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def conv_out(
    size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil_mode: bool = False
) -> int:
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + padding:  # last window must start inside the input
            out -= 1
        return out
    return span // stride + 1


__all__ = [
    "POINTWISE",
    "REGISTRY",
    "Channels",
    "Example",
    "Kernel",
    "KernelPair",
    "Op",
    "PositiveInt",
    "PositivePair",
    "Probability",
    "Scalable",
    "ShapeError",
    "SizePair",
    "Window",
    "conv_out",
    "example",
    "pair",
    "pair_of",
    "register",
    "torch_function",
]
