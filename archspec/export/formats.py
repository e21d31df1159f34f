"""The export formats, one table: how each is written, and how a written file is loaded back and
run on inputs for verification (with the tools a user of that format would use)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from archspec.errors import ExportError
from archspec.export.source import Source
from archspec.export.verify import outputs

ONNX_OPSET = 18
ONNX_MAX_BYTES = 2**31  # protobuf's limit for one file; larger models need external data
INPUT_NAME, OUTPUT_NAME = "input", "logits"
EXAMPLE_BATCH = 2  # traced with batch 2: torch.export specialises a dimension of size 1

Runs = list[list[torch.Tensor]]


@dataclass(frozen=True)
class Format:
    name: str
    suffixes: tuple[str, ...]  # the first is the one to use
    summary: str
    write: Callable[[Source, nn.Module, Path], None]  # (source, module to write, path)
    run: Callable[[Path, Source, Sequence[torch.Tensor]], Runs]  # outputs per input
    graph: bool  # holds the computation (so --optimize applies), not only spec or weights
    companions: tuple[str, ...] = ()  # suffixes of files written beside it (OpenVINO's .bin)
    needs: tuple[str, ...] = ()  # modules of the optional extra named after the format
    strict_suffix: bool = False  # its runtime reads only files with one of `suffixes`

    def check_installed(self) -> None:
        """One ExportError line naming the extra to install when a module it needs is absent."""
        import importlib.util

        missing = [m for m in self.needs if importlib.util.find_spec(m) is None]
        if missing:
            raise ExportError(
                f"the {self.name} format needs {', '.join(missing)}: "
                f"pip install 'archspec[{self.name}]'"
            )


def example(source: Source) -> torch.Tensor:
    from archspec.export.verify import example_inputs

    return example_inputs(source.spec, (EXAMPLE_BATCH,))[0]


def _eval(module: nn.Module, inputs: Sequence[torch.Tensor]) -> Runs:
    with torch.inference_mode():
        return [outputs(module(x)) for x in inputs]


# --- yaml: the resolved spec -------------------------------------------------------------------


def _write_yaml(source: Source, module: nn.Module, path: Path) -> None:
    from archspec.spec.dump import dump_spec

    path.write_text(dump_spec(source.spec, header=source.header))


def _run_yaml(path: Path, source: Source, inputs: Sequence[torch.Tensor]) -> Runs:
    from archspec.compile import build
    from archspec.spec import load_spec

    rebuilt = build(load_spec(path))
    rebuilt.load_state_dict(source.model.state_dict(), strict=True)
    return _eval(rebuilt.eval(), inputs)


# --- safetensors: the state_dict, with the spec in the metadata ---------------------------------


def _write_safetensors(source: Source, module: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    from archspec import __version__
    from archspec.spec.dump import dump_spec

    tensors = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    metadata = {"format": "pt", "archspec": __version__, "spec": dump_spec(source.spec)}
    save_file(tensors, path, metadata=metadata)


def _run_safetensors(path: Path, source: Source, inputs: Sequence[torch.Tensor]) -> Runs:
    from safetensors import safe_open

    from archspec.compile import build
    from archspec.export.source import read_weights
    from archspec.spec import load_spec

    with safe_open(path, framework="pt") as handle:
        spec_text = (handle.metadata() or {}).get("spec", "")
    rebuilt = build(load_spec(spec_text))  # the spec stored inside the file
    rebuilt.load_state_dict(read_weights(path), strict=True)
    return _eval(rebuilt.eval(), inputs)


# --- onnx --------------------------------------------------------------------------------------


def _write_onnx(source: Source, module: nn.Module, path: Path) -> None:
    from torch.export import Dim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example(source),),
            input_names=[INPUT_NAME],
            output_names=_output_names(module, source),
            dynamic_shapes=({0: Dim("batch", min=1, max=4096)},),
            opset_version=ONNX_OPSET,
            dynamo=True,
            verbose=False,
        )
    assert program is not None
    program.model.doc_string = source.header
    program.model.metadata_props.update(metadata(source))
    program.save(str(path), external_data=False)
    if path.stat().st_size >= ONNX_MAX_BYTES:
        raise ExportError(f"{path.name}: the model is over 2 GB, the limit of one ONNX file")


def metadata(source: Source) -> dict[str, str]:
    """What a deployment needs beside the graph: the spec, the input preprocessing and the class
    names (JSON), under `archspec.*` keys."""
    import json

    from archspec import __version__
    from archspec.spec.dump import dump_spec

    meta = {"archspec.version": __version__, "archspec.spec": dump_spec(source.spec)}
    if source.preprocessing is not None:
        meta["archspec.preprocessing"] = source.preprocessing.model_dump_json()
    if source.class_names is not None:
        meta["archspec.class_names"] = json.dumps(source.class_names)
    return meta


def _output_names(module: nn.Module, source: Source) -> list[str]:
    count = len(_eval(module, [example(source)])[0])
    return [OUTPUT_NAME] + [f"{OUTPUT_NAME}_{i}" for i in range(1, count)]


def onnx_session(path: str | Path, threads: int | None = None):  # -> ort.InferenceSession
    """An onnxruntime CPU session with every graph optimization and `threads` intra-op threads
    (default: torch's thread count, for a like-for-like comparison)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run_onnx(path: Path, source: Source, inputs: Sequence[torch.Tensor]) -> Runs:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{path.name}: onnx.checker: {exc}") from exc
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    return [[torch.from_numpy(y) for y in session.run(None, {name: x.numpy()})] for x in inputs]


# --- openvino: IR, model.xml (graph) + model.bin (weights) ------------------------------------


def _write_openvino(source: Source, module: nn.Module, path: Path) -> None:
    import openvino as ov

    shape = ov.PartialShape([-1, source.spec.input.channels, *source.spec.input.hw])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # OpenVINO's TorchScript frontend: the fastest IR where tracing works
            model = ov.convert_model(module, example_input=(example(source),), input=[shape])
        except Exception:  # e.g. attention fails the tracer's sanity check: torch.export's
            model = ov.convert_model(_exported(source, module))
    model.inputs[0].get_tensor().set_names({INPUT_NAME})
    for index, port in enumerate(model.outputs):
        port.get_tensor().set_names({OUTPUT_NAME if index == 0 else f"{OUTPUT_NAME}_{index}"})
    for key, value in metadata(source).items():
        model.set_rt_info(value, key.split("."))  # <rt_info><archspec><spec value=...>
    ov.save_model(model, str(path), compress_to_fp16=False)  # float32 weights, as trained


def openvino_model(path: str | Path, precision: str = "f32", threads: int | None = None):
    """An OpenVINO model compiled for the CPU at `precision` ("f32", or "bf16", OpenVINO's own
    default on CPUs with bfloat16 instructions), tuned for latency, with `threads` inference
    threads (default: torch's thread count)."""
    import openvino as ov

    core = ov.Core()
    config = {
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
    }
    return core.compile_model(core.read_model(str(path)), "CPU", config)


def _run_openvino(path: Path, source: Source, inputs: Sequence[torch.Tensor]) -> Runs:
    compiled = openvino_model(path)  # float32: the file must match the eager model exactly
    runs = []
    for x in inputs:
        result = compiled(x.numpy())
        runs.append([torch.from_numpy(result[port].copy()) for port in compiled.outputs])
    return runs


# --- pt2: torch.export ---------------------------------------------------------------------------


def _exported(source: Source, module: nn.Module) -> torch.export.ExportedProgram:
    """`module` through torch.export, with a dynamic batch axis."""
    from torch.export import Dim

    return torch.export.export(
        module, (example(source),), dynamic_shapes=({0: Dim("batch", min=1, max=4096)},)
    )


def _write_pt2(source: Source, module: nn.Module, path: Path) -> None:
    program = _exported(source, module)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_STORAGE_WARNING)
        torch.export.save(program, path)


# torch warns about the storage grouping of channels_last weights; they save and load correctly
_STORAGE_WARNING = "No complete tensor found"


def load_pt2(path: str | Path) -> nn.Module:
    """The module of a saved torch.export program."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_STORAGE_WARNING)
        return torch.export.load(path).module()


def _run_pt2(path: Path, source: Source, inputs: Sequence[torch.Tensor]) -> Runs:
    return _eval(load_pt2(path), inputs)


# --- torchscript ---------------------------------------------------------------------------------


def _write_torchscript(source: Source, module: nn.Module, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        scripted = torch.jit.trace(module, (example(source),), check_trace=False)
        torch.jit.save(scripted, str(path))


def _run_torchscript(path: Path, source: Source, inputs: Sequence[torch.Tensor]) -> Runs:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _eval(torch.jit.load(str(path)), inputs)


# --- py: standalone source -----------------------------------------------------------------------


def _write_py(source: Source, module: nn.Module, path: Path) -> None:
    from archspec.export.pysource import python_source

    height, width = source.spec.input.hw
    shape = f"(N, {source.spec.input.channels}, {height}, {width}) -> logits"
    title = source.header
    pre = source.preprocessing
    if pre is not None:
        title += (
            f"\nInputs: resized to {pre.size[0]}x{pre.size[1]} ({pre.resize}), scaled to "
            f"[0, 1], normalised with mean {pre.mean}, std {pre.std}."
        )
    class_name = type(module).__name__
    if class_name in ("GraphModule", "GraphModuleImpl"):
        class_name = "Model"
    path.write_text(python_source(module, class_name, title, shape, source.class_names))


# Runs the standalone file where `import archspec` fails, as a user without archspec would.
_STANDALONE = """
import importlib.util, sys
sys.modules["archspec"] = None  # any `import archspec` now raises ImportError
import torch
from safetensors.torch import load_file, save_file
torch.set_num_threads(1)
spec = importlib.util.spec_from_file_location("standalone", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model = module.load(sys.argv[2])
inputs = load_file(sys.argv[3])
out = {}
with torch.inference_mode():
    for key, x in inputs.items():
        y = model(x)
        for i, t in enumerate([y] if isinstance(y, torch.Tensor) else y):
            out[f"{key}.{i}"] = t.contiguous()
save_file(out, sys.argv[4])
"""


def run_standalone(
    path: Path, state_dict: dict[str, torch.Tensor], inputs: Sequence[torch.Tensor]
) -> Runs:
    """Outputs of the standalone file `path` on `inputs`, computed in a fresh Python process
    in which archspec cannot be imported."""
    from safetensors.torch import load_file, save_file

    with tempfile.TemporaryDirectory(prefix="archspec-py-") as folder:
        tmp = Path(folder)
        weights = {k: v.detach().contiguous() for k, v in state_dict.items()}
        save_file(weights, tmp / "weights.safetensors")
        save_file({str(i): x.contiguous() for i, x in enumerate(inputs)}, tmp / "in.safetensors")
        args = [str(path), str(tmp / "weights.safetensors"), str(tmp / "in.safetensors")]
        done = subprocess.run(
            [sys.executable, "-c", _STANDALONE, *args, str(tmp / "out.safetensors")],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ExportError(f"{path.name}: the standalone file does not run: {last}")
        out = load_file(tmp / "out.safetensors")
    runs: Runs = []
    for i in range(len(inputs)):
        count = sum(1 for k in out if k.startswith(f"{i}."))
        runs.append([out[f"{i}.{j}"] for j in range(count)])
    return runs


def _run_py(path: Path, source: Source, inputs: Sequence[torch.Tensor]) -> Runs:
    return run_standalone(path, source.model.state_dict(), inputs)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("yaml", (".yaml", ".yml"), "the fully resolved spec", _write_yaml, _run_yaml, False),
        Format(
            "safetensors",
            (".safetensors",),
            "the weights (state_dict), the spec in the metadata",
            _write_safetensors,
            _run_safetensors,
            False,
        ),
        Format(
            "onnx",
            (".onnx",),
            f"ONNX opset {ONNX_OPSET}, dynamic batch axis",
            _write_onnx,
            _run_onnx,
            True,
            needs=("onnx", "onnxruntime", "onnxscript"),
        ),
        Format(
            "openvino",
            (".xml",),
            "OpenVINO IR (.xml graph beside a .bin of float32 weights), dynamic batch",
            _write_openvino,
            _run_openvino,
            True,
            companions=(".bin",),
            needs=("openvino",),
            strict_suffix=True,
        ),
        Format(
            "pt2",
            (".pt2",),
            "torch.export program (torch.export.load), dynamic batch",
            _write_pt2,
            _run_pt2,
            True,
            strict_suffix=True,
        ),
        Format(
            "torchscript",
            (".pt", ".ts", ".torchscript"),
            "TorchScript (torch.jit.load)",
            _write_torchscript,
            _run_torchscript,
            True,
        ),
        Format(
            "py",
            (".py",),
            "standalone PyTorch source; loads the safetensors weights",
            _write_py,
            _run_py,
            False,
        ),
    )
}


def format_for(path: str | Path, name: str | None = None) -> Format:
    """The format called `name`, or the one `path`'s extension stands for."""
    from archspec.errors import unknown_message

    if name is not None:
        if name not in FORMATS:
            raise ExportError(unknown_message("format", name, list(FORMATS)))
        fmt = FORMATS[name]
        if fmt.strict_suffix and Path(path).suffix.lower() not in fmt.suffixes:
            raise ExportError(
                f"the {name} format is read only from files named *{fmt.suffixes[0]}; "
                f"got {Path(path).name!r}"
            )
        return fmt
    suffix = Path(path).suffix.lower()
    for fmt in FORMATS.values():
        if suffix in fmt.suffixes:
            return fmt
    known = ", ".join(f"{s} ({f.name})" for f in FORMATS.values() for s in f.suffixes)
    raise ExportError(
        f"cannot tell the format from {Path(path).name!r}: give one of "
        f"{', '.join(FORMATS)}, or a file name ending in {known}"
    )
