"""The spec language as pydantic models: what a user may write in a spec file."""

from __future__ import annotations

import keyword
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from archspec.errors import Location
from archspec.spec.yamlsource import PathKey, Source

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A layer's name becomes its module and state_dict name: any name torch accepts for a module
# (torchvision's `block1-0`, `0`) made of letters, digits, `_` and `-` (`.` joins the path;
# quotes and spaces could never reach generated code). The fx node name is sanitized by fx.
ITEM_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"
# what `from:` reads: a layer name, a layer inside a group by its dotted module path
# (`stage.2.conv`), or part i of a split or chunk (`halves.1`)
FROM_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)*$"
PATTERN_WORDS = {  # what a pattern means, for error messages
    NAME_PATTERN: "a name of letters, digits and _, not starting with a digit",
    ITEM_NAME_PATTERN: "a layer name of letters, digits, _ and - (no dots, no spaces)",
    FROM_PATTERN: "a layer name (letters, digits, _ and -), group.layer for a layer inside a "
    "group, or name.i for part i of a split",
}
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
ItemName = Annotated[str, Field(pattern=ITEM_NAME_PATTERN, max_length=64)]
FromName = Annotated[str, Field(pattern=FROM_PATTERN, max_length=256)]
Expr = Annotated[str, Field(pattern=r"^\$", max_length=200)]
PositiveInt = Annotated[int, Field(ge=1, le=1 << 20)]
Multiplier = Annotated[float, Field(gt=0, le=16)]  # a width/depth/resolution factor
Value = int | float | bool | str | None | list[Any]

RESERVED_NAMES = {"input"}
# Names every block and the network already define in expressions (graph/expand.py): an option
# or block parameter of the same name would be silently shadowed by them.
SCOPE_NAMES = ("in_channels", "in_height", "in_width", "index", "depth_index", "depth_total")


def _not_scope_names(names: dict[str, Any], what: str) -> dict[str, Any]:
    taken = [name for name in names if name in SCOPE_NAMES]
    if taken:
        raise ValueError(
            f"{what} {taken[0]!r} is a name archspec defines in every scope (one of "
            f"{', '.join(SCOPE_NAMES)}); choose another name"
        )
    return names


# A layer name becomes an attribute of the built fx.GraphModule (and of the nn.Module
# containers on its path) and a name in its generated forward: none of these may be one.
# Written out so that validation needs no torch; tests/spec/test_names.py checks it still
# covers every attribute of torch's GraphModule.
MODULE_ATTRIBUTES = frozenset(
    """
    T_destination _apply _backward_hooks _backward_pre_hooks _boxed_call _buffers _call_impl
    _code _compiled_call_impl _create_node_hooks _deepcopy_hooks _deepcopy_init
    _erase_node_hooks _forward_hooks _forward_hooks_always_called _forward_hooks_with_kwargs
    _forward_pre_hooks _forward_pre_hooks_with_kwargs _get_backward_hooks
    _get_backward_pre_hooks _get_name _graph _is_full_backward_hook _lineno_map
    _load_from_state_dict _load_state_dict_post_hooks _load_state_dict_pre_hooks
    _maybe_warn_non_full_backward_hook _modules _named_members _non_persistent_buffers_set
    _parameters _prologue_start _recompile_submodules _register_create_node_hook
    _register_deepcopy_hook _register_erase_node_hook _register_load_state_dict_pre_hook
    _register_replace_node_hook _register_state_dict_hook _replace_hooks
    _replicate_for_data_parallel _save_to_state_dict _set_replace_hook _slow_forward
    _state_dict_hooks _state_dict_pre_hooks _tracer_cls _tracer_extras
    _unregister_create_node_hook _unregister_deepcopy_hook _unregister_erase_node_hook
    _unregister_replace_node_hook _version _wrapped_call _wrapped_call_impl add_module
    add_submodule apply bfloat16 buffers call_super_init children code compile cpu cuda
    delete_all_unused_submodules delete_submodule double dump_patches eval extra_repr float
    forward get_buffer get_extra_state get_parameter get_submodule graph half ipu
    load_state_dict meta modules mtia named_buffers named_children named_modules
    named_parameters parameters print_readable recompile register_backward_hook
    register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook
    requires_grad_ set_extra_state set_submodule shape_env share_memory state_dict to
    to_empty to_folder train training type xpu zero_grad
    """.split()
)


def layer_name_problem(name: str) -> str | None:
    """Why `name` cannot name a layer, or None."""
    if name in RESERVED_NAMES:
        return f"{name!r} is reserved for the block or model input"
    if keyword.iskeyword(name) or name == "self":  # `self` is the module in the forward
        return f"{name!r} is a Python keyword; it cannot name a layer (try {name + '_'!r})"
    if name in MODULE_ATTRIBUTES or (name.startswith("__") and name.endswith("__")):
        return (
            f"{name!r} is an attribute of torch.nn.Module; a layer of that name would replace "
            f"it (try {name.strip('_') + '_' if name.strip('_') else 'x'!r})"
        )
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


ParamType = Literal["int", "float", "bool", "str", "channels", "kernel", "pair", "list"]


class ParamDef(_Strict):
    """A block parameter or model option. `channels` values are scaled by the width multiplier,
    `kernel` values can be replaced by a per-stage kernel choice; the other types never scale.
    `pair` is an int or [h, w] (an asymmetric kernel_size), `list` a list of values.
    Shorthand: `out_channels: channels` for a required parameter of that type."""

    type: ParamType
    default: int | float | bool | str | list[int | float | bool | str] | None = None
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
    from_: FromName | list[FromName] | None = Field(None, alias="from")
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
        problem = None if name is None else layer_name_problem(name)
        if problem:
            raise ValueError(problem)
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

    @field_validator("params")
    @classmethod
    def _own_names(cls, params: dict[str, Any]) -> dict[str, Any]:
        return _not_scope_names(params, "block parameter")


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

    @field_validator("options")
    @classmethod
    def _own_names(cls, options: dict[str, Any]) -> dict[str, Any]:
        return _not_scope_names(options, "option")
