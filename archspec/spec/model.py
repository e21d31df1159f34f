"""The spec language as pydantic models: what a user may write in a spec file."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from archspec.errors import Location
from archspec.spec.yamlsource import PathKey, Source

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A layer's name becomes its module and state_dict name: any name torch accepts for a module
# (torchvision's `block1-0`, `0`) made of letters, digits, `_` and `-` (`.` joins the path;
# quotes and spaces could never reach generated code). The fx node name is sanitized by fx.
ITEM_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"
PATTERN_WORDS = {  # what a pattern means, for error messages
    NAME_PATTERN: "a name of letters, digits and _, not starting with a digit",
    ITEM_NAME_PATTERN: "a layer name of letters, digits, _ and - (no dots, no spaces)",
}
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
ItemName = Annotated[str, Field(pattern=ITEM_NAME_PATTERN, max_length=64)]
Expr = Annotated[str, Field(pattern=r"^\$", max_length=200)]
PositiveInt = Annotated[int, Field(ge=1, le=1 << 20)]
Multiplier = Annotated[float, Field(gt=0, le=16)]  # a width/depth/resolution factor
Value = int | float | bool | str | None | list[Any]

RESERVED_NAMES = {"input"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


ParamType = Literal["int", "float", "bool", "str", "channels", "kernel"]


class ParamDef(_Strict):
    """A block parameter or model option. `channels` values are scaled by the width multiplier,
    `kernel` values can be replaced by a per-stage kernel choice; the other types never scale.
    Shorthand: `out_channels: channels` for a required parameter of that type."""

    type: ParamType
    default: int | float | bool | str | None = None
    doc: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None


def _param_shorthand(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


class InputDef(_Strict):
    """The model input: an image with `channels` channels of `size` (square) or [height, width]."""

    channels: PositiveInt
    size: PositiveInt | Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]
    size_multiple: PositiveInt = Field(1, description="a scaled resolution is rounded to this")

    @property
    def hw(self) -> tuple[int, int]:
        return (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)


class Item(BaseModel):
    """One entry of a `layers` list: an op (`op:` plus its parameters), a block instance or
    stage (`block:`, `args:`, `repeat:`, `first:`), or an inline group (`layers:`)."""

    model_config = ConfigDict(
        extra="allow", frozen=True, strict=True, allow_inf_nan=False, populate_by_name=True
    )

    name: ItemName | None = None
    from_: ItemName | list[ItemName] | None = Field(None, alias="from")
    when: bool | Expr | None = None
    op: str | None = None
    block: Name | None = None
    args: dict[Name, Value] = Field(default_factory=dict)
    first: dict[Name, Value] = Field(default_factory=dict)
    layers: list[Item] | None = None
    repeat: PositiveInt | Expr | None = None

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str | None) -> str | None:
        if name in RESERVED_NAMES:
            raise ValueError(f"{name!r} is reserved for the block or model input")
        return name

    @field_validator("op")
    @classmethod
    def _known_op(cls, op: str | None) -> str | None:
        if op is not None:
            from archspec.ops import get_op

            try:
                get_op(op)
            except KeyError as exc:
                raise ValueError(exc.args[0]) from None
        return op

    @model_validator(mode="after")
    def _one_kind(self) -> Item:
        kinds = [k for k in ("op", "block", "layers") if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none of them"
            raise ValueError(f"an item needs exactly one of op, block or layers (found {found})")
        extra = sorted(self.model_extra or {})
        if self.op is None and extra:
            raise ValueError(f"unknown key(s) {', '.join(extra)}; parameters go under an op")
        if self.block is None and (self.args or self.first):
            raise ValueError("args and first belong to block items")
        if self.op is not None and self.repeat is not None:
            raise ValueError("repeat applies to blocks and groups; wrap the op in `layers:`")
        return self

    @property
    def params(self) -> dict[str, Any]:
        """The op parameters written on this item."""
        return dict(self.model_extra or {})


class BlockDef(_Strict):
    """A reusable block: named parameters and the layers they are used in."""

    params: dict[Name, ParamDef] = Field(default_factory=dict)
    layers: Annotated[list[Item], Field(min_length=1)]
    doc: str | None = None

    @field_validator("params", mode="before")
    @classmethod
    def _shorthand(cls, params: Any) -> Any:
        return (
            {k: _param_shorthand(v) for k, v in params.items()}
            if isinstance(params, dict)
            else params
        )


class Preset(_Strict):
    """A named scale of the model (EfficientNet-B3, YOLO's n/s/m/l/x...)."""

    width: Multiplier = 1.0
    depth: Multiplier = 1.0
    resolution: PositiveInt | None = None
    options: dict[Name, Value] = Field(default_factory=dict)


class ScalingDef(_Strict):
    """How this spec scales: the channel divisor and named presets."""

    divisor: PositiveInt = 8
    presets: dict[Name, Preset] = Field(default_factory=dict)


class Spec(_Strict):
    """A whole architecture."""

    name: Name
    description: str | None = None
    input: InputDef
    options: dict[Name, ParamDef] = Field(default_factory=dict)
    blocks: dict[Name, BlockDef] = Field(default_factory=dict)
    layers: Annotated[list[Item], Field(min_length=1)]
    outputs: Annotated[list[ItemName], Field(min_length=1)] | None = None
    scaling: ScalingDef = Field(default_factory=ScalingDef)

    _source: Source | None = PrivateAttr(None)

    def locate(self, path: PathKey, key: bool = False) -> Location:
        """Where `path` (e.g. ("layers", 3, "kernel_size")) was written, as near as known."""
        source = self._source  # one private-attribute lookup: this runs once per graph node
        if source is None:
            return Location(f"<{self.name}>")
        return source.locate(path, key)

    @property
    def file(self) -> str:
        return self._source.file if self._source else f"<{self.name}>"

    @field_validator("options", mode="before")
    @classmethod
    def _shorthand(cls, options: Any) -> Any:
        return (
            {k: _param_shorthand(v) for k, v in options.items()}
            if isinstance(options, dict)
            else options
        )
