"""The third capture: torch.export, for forwards that no torch.fx trace gets through (a check
that the input is a tensor, a list made of a tensor), lifted back to module calls and torch
functions; exact like the other tiers, refused in one line where an ATen op has no op."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from typer.testing import CliRunner

from archspec.cli import app
from archspec.importer import ImportSourceError, import_module
from tests.importer import models
from tests.importer.test_import import _SumFromZero, check_exact

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _commands():
    from archspec.cli import importer  # noqa: F401 - registers the command


def _lineno(text: str) -> int:
    source = open(models.__file__).read().splitlines()
    return next(n for n, line in enumerate(source, 1) if text in line)


def test_a_forward_that_checks_for_a_tensor_is_captured_by_torch_export(tmp_path):
    """`if not isinstance(x, torch.Tensor): raise` stops both torch.fx traces (a proxy is no
    tensor); torch.export runs it on fake tensors. Modules come back as their calls (the
    residual blocks as a repeat), the parameter read directly as a parameter, the channel
    slice as narrow."""
    source = models.Checked()
    imported = import_module(source, (3, 16, 16), name="checked")
    check_exact(source, imported.spec, (3, 16, 16))
    text = imported.text
    line = _lineno('raise TypeError(f"expected a tensor')
    assert (
        "# captured by torch.export, sizes fixed at the input 3x16x16 (torch.fx cannot trace "
        "the forward: TypeError: expected a tensor, got _SizedProxy at "
        f"tests/importer/models.py:{line} "
    ) in text
    assert "{block: residual, name: blocks, repeat: 2}" in text
    assert "{op: parameter, name: scale, shape: [8, 1, 1]}" in text
    assert "{op: narrow, start: 0, length: 4}" in text
    out = tmp_path / "checked.yaml"
    args = ["import", "tests.importer.models:checked", "-o", str(out), "--input", "3,16,16"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.read_text().split("\nname:")[1] == text.split("\nname:")[1]


def test_a_layer_that_takes_a_tensor_or_a_list_is_captured_by_torch_export():
    """DenseNet's layers take a tensor or a list: `[x] if torch.is_tensor(x) else list(x)`
    takes a proxy for a list, which torch.fx cannot iterate."""
    source = models.TensorOrList()
    imported = import_module(source, (3, 8, 8))
    check_exact(source, imported.spec, (3, 8, 8))
    assert "(torch.fx cannot trace the forward: TraceError: Proxy object cannot be iterated at" in (
        imported.text
    )
    assert "{op: concat, from: [input, layer1]}" in imported.text


def test_an_aten_op_without_an_op_is_refused_in_one_line_naming_it(tmp_path):
    with pytest.raises(ImportSourceError) as caught:
        import_module(models.Checked(unmapped=True), (3, 16, 16))
    assert [str(p) for p in caught.value.problems] == [
        "unmapped function aten.erf: 1 use, first at erf"
    ]
    out = tmp_path / "unmapped.yaml"
    args = ["import", "tests.importer.models:checked_unmapped", "-o", str(out)]
    result = runner.invoke(app, [*args, "--input", "3,16,16"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["unmapped function aten.erf: 1 use, first at erf"]
    assert not list(tmp_path.iterdir())


class _SelfAttention(torch.nn.Module):
    """ViT's encoder in small: nn.MultiheadAttention called as attn(x, x, x), its output's
    first part read."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Conv2d(3, 8, 4, stride=4)
        self.norm = torch.nn.LayerNorm(8)
        self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        y = self.norm(x)
        y, _ = self.attn(y, y, y, need_weights=False)
        return (x + y).mean(1)


def _torchvision(name: str) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        import torchvision

        return torchvision.models.get_model(name, weights=None)

    return build


@pytest.mark.parametrize(
    ("build", "shape"),
    [
        (models.Tiny, (3, 16, 16)),
        (models.Dla, (3, 8, 8)),
        (models.MaxVitLike, (3, 8, 8)),
        (models.Fuse, (3, 8, 8)),
        (models.Head, (3, 8, 8)),
        (_SumFromZero, (3, 8, 8)),
        (models.PadToPatches, (3, 16, 14)),
        pytest.param(_torchvision("efficientnet_b0"), (3, 32, 32), marks=pytest.mark.slow),
        (_SelfAttention, (3, 16, 16)),
    ],
)
def test_the_export_tier_gives_the_spec_torch_fx_gives(build, shape, monkeypatch):
    """Where a torch.fx trace gets through too, the exported graph lifted reads the same: the
    nn.Identity and StochasticDepth calls that compute nothing in eval mode are kept (export
    marks every call), MaxViT's relative position index is a constant as in torch.fx, ViT's
    nn.MultiheadAttention is one call of (x, x, x) whose output's first part is read. Not
    everywhere: a parameter is read where an op first uses it, not where the forward names it
    (`self.alpha * torch.tanh(x)` reads alpha after the tanh)."""
    from archspec.importer import capture

    torch.manual_seed(0)
    model = build()
    traced = import_module(model, shape).text

    def untraceable(model, example, leaves, sized):
        raise ImportSourceError("torch.fx cannot trace it (in this test)")

    monkeypatch.setattr(capture, "_trace", untraceable)
    exported = import_module(model, shape).text
    assert "# captured by torch.export" in exported
    assert exported.split("\nname:")[1] == traced.split("\nname:")[1]
