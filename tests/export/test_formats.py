"""Every format end to end: exported once, then loaded back with that format's own tools (not
archspec's verification) and compared with the eager model."""

import re
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import archspec
from archspec.export import FORMATS, export
from archspec.export.formats import ONNX_OPSET
from tests.export.conftest import inputs


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    results = {}
    for name, fmt in FORMATS.items():
        results[name] = export(tiny, folder / f"tiny{fmt.suffixes[0]}")
    return results


@pytest.fixture(scope="module")
def expected(tiny):
    with torch.inference_mode():
        return tiny.model(inputs())


def test_every_format_is_written_and_verified_at_batch_1_and_4(exported):
    assert set(exported) == {"yaml", "safetensors", "onnx", "pt2", "torchscript", "py"}
    for name, result in exported.items():
        assert result.path.is_file() and result.path.stat().st_size > 0, name
        assert [c.batch for c in result.checks] == [1, 4]
        assert result.max_abs_diff <= 1e-5, (name, result.checks)
        assert "max abs difference from the eager model: batch 1:" in result.describe()
    folder = exported["yaml"].path.parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(  # no temporary files left
        f"tiny{f.suffixes[0]}" for f in FORMATS.values()
    )


def test_yaml_rebuilds_the_same_model(exported, tiny, expected):
    rebuilt = archspec.build(archspec.load_spec(exported["yaml"].path))
    rebuilt.load_state_dict(tiny.model.state_dict())
    with torch.inference_mode():
        assert torch.allclose(rebuilt.eval()(inputs()), expected, atol=1e-6)


def test_safetensors_holds_the_weights_and_the_spec(exported, tiny, expected):
    path = exported["safetensors"].path
    with safe_open(path, framework="pt") as handle:
        spec = archspec.load_spec(handle.metadata()["spec"])
    model = archspec.build(spec)
    model.load_state_dict(load_file(path), strict=True)
    with torch.inference_mode():
        assert torch.allclose(model.eval()(inputs()), expected, atol=1e-6)


def test_onnx_checks_and_runs_with_a_dynamic_batch(exported, expected):
    path = str(exported["onnx"].path)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {ONNX_OPSET}
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: inputs().numpy()})
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5, rtol=0)


def test_pt2_reloads_with_torch_export(exported, expected):
    program = torch.export.load(exported["pt2"].path)
    with torch.inference_mode():
        assert torch.allclose(program.module()(inputs()), expected, atol=1e-6)


def test_torchscript_reloads_with_torch_jit(exported, expected):
    scripted = torch.jit.load(str(exported["torchscript"].path))
    with torch.inference_mode():
        assert torch.allclose(scripted(inputs()), expected, atol=1e-6)


def test_py_runs_where_archspec_cannot_be_imported(exported, tiny, expected, tmp_path):
    path = exported["py"].path
    text = path.read_text()
    assert not re.search(r"^\s*(import|from)\s+archspec", text, re.MULTILINE)
    assert "class TinyEffnet(nn.Module):" in text and "def forward(self, x):" in text
    save_file(
        {k: v.contiguous() for k, v in tiny.model.state_dict().items()}, tmp_path / "w.safetensors"
    )
    save_file({"x": inputs()}, tmp_path / "x.safetensors")
    script = textwrap.dedent(f"""
        import importlib.util, sys
        sys.modules["archspec"] = None
        try:
            import archspec
        except ImportError:
            pass
        else:
            raise SystemExit("archspec is importable")
        import torch
        from safetensors.torch import load_file, save_file
        spec = importlib.util.spec_from_file_location("standalone", {str(path)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.load({str(tmp_path / "w.safetensors")!r})
        assert not model.training
        with torch.inference_mode():
            y = model(load_file({str(tmp_path / "x.safetensors")!r})["x"])
        save_file({{"y": y}}, {str(tmp_path / "y.safetensors")!r})
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert torch.allclose(load_file(tmp_path / "y.safetensors")["y"], expected, atol=1e-6)
