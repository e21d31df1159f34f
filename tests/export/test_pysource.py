"""Standalone source for modules fx cannot trace into: their class is copied into the file."""

import re

import torch
from torch import nn

from archspec.export.formats import run_standalone
from archspec.export.pysource import python_source
from archspec.ops.modules import ShiftedWindowAttention


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.attn = ShiftedWindowAttention(8, (2, 2), (1, 1), 2, True, True, 0.0, 0.0)

    def forward(self, x):  # (N, H, W, C)
        return self.attn(self.norm(x))


def test_untraceable_module_is_copied_with_its_helpers_and_runs_without_archspec(tmp_path):
    model = _Net().eval()
    text = python_source(model, "Net", "a window attention", "(N, 4, 4, 8)")
    assert "class ShiftedWindowAttention(nn.Module):" in text
    assert "def window_partition(" in text and "def shift_mask(" in text  # its helpers
    assert "'window': (2, 2), 'shift': (1, 1), 'num_heads': 2" in text
    assert not re.search(r"^\s*(import|from)\s+archspec", text, re.MULTILINE)
    got, want = _standalone_and_eager(tmp_path, text, model, (2, 4, 4, 8))
    assert torch.allclose(got, want, atol=1e-6)


def _standalone_and_eager(tmp_path, text, model, shape):
    """The written file's output in a fresh process, and the module's own, on one input."""
    path = tmp_path / "net.py"
    path.write_text(text)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = model(x)
    (got,), *_ = run_standalone(path, model.state_dict(), [x])
    return got, want


def test_convolutions_with_every_padding_mode_are_valid_python(tmp_path):
    """torch's repr writes padding_mode=circular unquoted: the file is written from the
    module's attributes instead."""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"),
        nn.Conv2d(4, 4, 3, padding="same", padding_mode="reflect", groups=2, bias=False),
        nn.Conv2d(4, 2, (1, 3), padding=(0, 1), padding_mode="replicate", dilation=(1, 2)),
    ).eval()
    text = python_source(model, "Net", "padding modes", "(N, 3, 8, 8)")
    assert "padding_mode='circular'" in text and "padding='same'" in text
    got, want = _standalone_and_eager(tmp_path, text, model, (2, 3, 8, 8))
    assert torch.equal(got, want)
