"""Weights from torchvision (or any hand-written module) into an archspec-built model."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from archspec.errors import ArchspecError


class WeightMismatchError(ArchspecError):
    """A state_dict that does not fit the model tensor for tensor."""


def map_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename `state_dict` to the model's names. Names that match are taken as they are; the
    rest are paired in order (state_dict order follows the forward in both), and every
    pair must agree in shape. Raises WeightMismatchError naming the first disagreement."""
    target = model.state_dict()
    if len(target) != len(state_dict):
        raise WeightMismatchError(
            f"the model has {len(target)} tensors, the state_dict {len(state_dict)}"
        )
    ours = [k for k in target if k not in state_dict]
    theirs = [k for k in state_dict if k not in target]
    pairs = {k: k for k in target if k in state_dict}
    pairs.update(zip(ours, theirs, strict=True))
    mapped: dict[str, torch.Tensor] = {}
    for name, source in pairs.items():
        tensor = state_dict[source]
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise WeightMismatchError(
                f"{source} {tuple(tensor.shape)} does not fit {name} {tuple(target[name].shape)}"
            )
        mapped[name] = tensor
    return mapped


def load_torchvision_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor]
) -> nn.Module:
    """Load a torchvision model's state_dict (e.g. pretrained weights on disk) into the model
    built from the matching zoo spec; every tensor's shape is checked."""
    model.load_state_dict(map_state_dict(model, state_dict), strict=True)
    return model
