"""Each format loaded back with its own tools (not archspec's verification), as a user would:
`run(format, path, state_dict, x)` -> the output for input x."""

import subprocess
import sys
import textwrap
from pathlib import Path

import onnxruntime as ort
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import archspec


def run_yaml(path: Path, state_dict: dict, x: torch.Tensor) -> torch.Tensor:
    model = archspec.build(archspec.load_spec(path))
    model.load_state_dict(state_dict)
    with torch.inference_mode():
        return model.eval()(x)


def run_safetensors(path: Path, state_dict: dict, x: torch.Tensor) -> torch.Tensor:
    with safe_open(path, framework="pt") as handle:
        spec = archspec.load_spec(handle.metadata()["spec"])
    model = archspec.build(spec)
    model.load_state_dict(load_file(path), strict=True)
    with torch.inference_mode():
        return model.eval()(x)


def run_onnx(path: Path, state_dict: dict, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(y)


def run_openvino(path: Path, state_dict: dict, x: torch.Tensor) -> torch.Tensor:
    import openvino as ov

    core = ov.Core()  # float32 asked for: OpenVINO's CPU default is bf16 where the CPU has it
    compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return torch.from_numpy(compiled(x.numpy())[compiled.output(0)].copy())


def run_pt2(path: Path, state_dict: dict, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.export.load(path).module()(x)


def run_torchscript(path: Path, state_dict: dict, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.jit.load(str(path))(x)


def run_py(path: Path, state_dict: dict, x: torch.Tensor) -> torch.Tensor:
    """In a fresh interpreter where `import archspec` fails (checked first)."""
    folder = path.parent / f"{path.stem}_run"
    folder.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in state_dict.items()}, folder / "w.safetensors")
    save_file({"x": x.contiguous()}, folder / "x.safetensors")
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
        model = module.load({str(folder / "w.safetensors")!r})
        assert not model.training
        with torch.inference_mode():
            y = model(load_file({str(folder / "x.safetensors")!r})["x"])
        save_file({{"y": y}}, {str(folder / "y.safetensors")!r})
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=folder, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return load_file(folder / "y.safetensors")["y"]


RUN = {
    "yaml": run_yaml,
    "safetensors": run_safetensors,
    "onnx": run_onnx,
    "openvino": run_openvino,
    "pt2": run_pt2,
    "torchscript": run_torchscript,
    "py": run_py,
}
