"""--optimize: BatchNorm folded into convolutions by torch.fx's fuse, layout chosen by timing."""

import pytest
import torch

from archspec.errors import ExportError
from archspec.export import export, fold_batchnorm, optimize
from archspec.export.optimize import LAYOUTS, count_batchnorms
from tests.export.conftest import inputs


def test_folding_removes_every_batchnorm_and_keeps_the_outputs(tiny):
    assert count_batchnorms(tiny.model) == 22
    folded = fold_batchnorm(tiny.model)
    assert count_batchnorms(folded) == 0
    assert count_batchnorms(tiny.model) == 22  # the original is untouched
    convs = [m for m in folded.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.bias is not None for m in convs)
    with torch.inference_mode():
        want, got = tiny.model(inputs()), folded(inputs())
    assert not torch.equal(want, got)  # the arithmetic really changed
    assert torch.allclose(want, got, atol=1e-5)


def test_folding_needs_eval_mode(tiny):
    tiny.model.train()
    try:
        with pytest.raises(ValueError, match="eval mode"):
            fold_batchnorm(tiny.model)
    finally:
        tiny.model.eval()


def test_optimize_measures_both_layouts_and_keeps_the_faster(tiny):
    result = optimize(tiny.model, inputs(2), repeats=3)
    assert set(result.latency_ms) == set(LAYOUTS)
    assert result.layout == min(result.latency_ms, key=result.latency_ms.get)
    weight = next(m for m in result.module.modules() if isinstance(m, torch.nn.Conv2d)).weight
    assert weight.is_contiguous(memory_format=LAYOUTS[result.layout])
    assert (result.folded, result.batchnorms) == (22, 22)
    assert "folded 22 of 22 BatchNorms" in result.describe()


def test_optimized_export_is_verified_against_the_unoptimized_model(tiny, tmp_path):
    result = export(tiny, tmp_path / "fast.pt2", optimize_graph=True)
    assert result.optimized is not None and result.optimized.folded == 22
    assert 0 < result.max_abs_diff <= 1e-5
    program = torch.export.load(result.path)
    names = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert not any("batch_norm" in str(t) for t in names)


def test_optimize_refuses_formats_that_keep_the_spec(tiny, tmp_path):
    for name in ("w.safetensors", "s.yaml", "m.py"):
        with pytest.raises(
            ExportError, match="optimize applies to onnx, openvino, pt2, torchscript"
        ):
            export(tiny, tmp_path / name, optimize_graph=True)
    assert list(tmp_path.iterdir()) == []
