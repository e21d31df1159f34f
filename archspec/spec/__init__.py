"""The YAML spec language: safe loading, validation, expressions."""

from archspec.spec.load import load_spec
from archspec.spec.model import BlockDef, InputDef, Item, ParamDef, Preset, ScalingDef, Spec

__all__ = ["BlockDef", "InputDef", "Item", "ParamDef", "Preset", "ScalingDef", "Spec", "load_spec"]
