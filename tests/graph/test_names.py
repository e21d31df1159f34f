"""Layer names as torch writes them (`block1-0`): module and state_dict names kept, fx names
sanitized, so a hand-written model's checkpoint loads by name."""

import pytest
import torch
from torch import nn

import archspec
from archspec.errors import SpecValidationError

SPEC = """\
name: dashed
input: {channels: 3, size: 16}
blocks:
  unit:
    layers:
      - {op: conv2d, name: conv-a, out_channels: 8, kernel_size: 3, padding: 1, bias: false}
      - {op: batchnorm, name: bn-a}
      - {op: relu}
layers:
  - {block: unit, name: block1-0}
  - {block: unit, name: block1-1}
  - {op: add, name: merge, from: [block1-0, block1-1]}
  - {op: conv2d, name: 2x, out_channels: 4, kernel_size: 1}
outputs: [2x, block1-0]
"""


class Unit(nn.Sequential):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.add_module("conv-a", nn.Conv2d(cin, 8, 3, padding=1, bias=False))
        self.add_module("bn-a", nn.BatchNorm2d(8))


class Dashed(nn.Module):
    """The same network written by hand, with the same module names."""

    def __init__(self) -> None:
        super().__init__()
        self.add_module("block1-0", Unit(3))
        self.add_module("block1-1", Unit(8))
        self.add_module("2x", nn.Conv2d(8, 4, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.relu(getattr(self, "block1-0")(x))
        b = torch.relu(getattr(self, "block1-1")(a))
        return getattr(self, "2x")(a + b), a


def test_checkpoint_of_a_hand_written_model_loads_by_name():
    torch.manual_seed(0)
    reference = Dashed().eval()
    model = archspec.build(SPEC).eval()
    assert list(model.state_dict()) == list(reference.state_dict())
    model.load_state_dict(reference.state_dict(), strict=True)  # by name, no pairing
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        for ours, theirs in zip(model(x), reference(x), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    names = archspec.compile.node_names(model)
    assert names["block1-0.conv-a"] == "block1_0_conv_a" and names["2x"] == "_2x"
    torch.export.export(model, (x,))


def test_names_that_cannot_be_module_names_are_refused_at_their_place():
    for bad in ("a.b", "a b", 'x"y', "-x"):
        text = SPEC.replace("name: merge", f"name: '{bad}'")
        with pytest.raises(SpecValidationError, match="expected a layer name of letters") as info:
            archspec.load_spec(text)
        assert (info.value.line, info.value.column) == (12, 21)
