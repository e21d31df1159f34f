"""int8 post-training quantization, checked on data: an OpenVINO IR quantized with NNCF, an ONNX
file with onnxruntime's static quantization (QDQ, per-channel weights), both calibrated on a
sample of the bundle's own training split (or of a dataset the user names). The int8 file is
kept only when its top-1 agrees with the float model's on at least `min_agreement` of the
bundle's held-out test split (or of every image of the named dataset); the agreement and the
measured speed-up over the float file are reported either way."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from archspec.errors import ExportError

if TYPE_CHECKING:
    from archspec.export.source import Source
    from archspec.train.config import Data

FORMATS = ("onnx", "openvino")
CALIBRATION_IMAGES = 300  # NNCF's default subset size
MIN_AGREEMENT = 0.99
TIMING_RUNS = 20


@dataclass(frozen=True)
class Int8Check:
    """How the int8 file compares with the float one on held-out images."""

    agreement: float  # share of images with the same top-1 class
    images: int
    calibration_images: int
    float_ms: float  # median batch-1 latency, same threads, same process
    int8_ms: float
    split: str  # "test" (the bundle's held-out split) or "all" (a dataset the user named)

    @property
    def speedup(self) -> float:
        return self.float_ms / self.int8_ms

    def describe(self) -> str:
        return (
            f"int8: top-1 agrees with float32 on {self.agreement:.2%} of {self.images} images "
            f"({self.split}); calibrated on {self.calibration_images}; batch-1 latency "
            f"{self.float_ms:.2f} -> {self.int8_ms:.2f} ms ({self.speedup:.2f}x)"
        )


def images(source: Source, data: Data | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(calibration images, images to check agreement on, which split) as model inputs:
    the bundle's training split and held-out test split, or a sample of `data` and all of
    it. Prepared with the bundle's recorded preprocessing."""
    from archspec.bundle import load_bundle
    from archspec.train.data import load_dataset
    from archspec.train.evaluate import recorded_data

    if source.bundle is None:
        raise ExportError(
            "int8 export needs a trained bundle (its preprocessing and data check the "
            "quantized model); export a bundle, or a study's trial that has one"
        )
    bundle = load_bundle(source.bundle)
    seed = bundle.manifest.provenance.seed or 0
    dataset = load_dataset(data if data is not None else recorded_data(bundle), seed)
    if data is None:
        calibrate, check, split = dataset.train_idx, dataset.test_idx, "test"
    else:
        check, split = torch.arange(len(dataset)), "all"
        calibrate = check[torch.randperm(len(check), generator=torch.Generator().manual_seed(0))]
    calibrate = calibrate[:CALIBRATION_IMAGES]
    pre = bundle.preprocess
    return pre(dataset.images[calibrate]), pre(dataset.images[check]), split


def quantize(fmt: str, float_path: Path, int8_path: Path, calibration: torch.Tensor) -> None:
    """Write the int8 version of the float file `float_path` to `int8_path`."""
    batches = [x[None].numpy() for x in calibration]
    if fmt == "openvino":
        import nncf
        import openvino as ov
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        model = ov.Core().read_model(str(float_path))
        quantized = nncf.quantize(
            model,
            nncf.Dataset(batches),
            subset_size=len(batches),
            preset=nncf.QuantizationPreset.MIXED,
            # Bias correction measured layer by layer on the calibration images rather than
            # from each layer's own mean shift: on mobilenet_v2 trained to 77% on shapes the
            # flips on its 800 test images fell from 24 to 12 (agreement 97.0% -> 98.5%).
            fast_bias_correction=False,
            model_type=nncf_model_type(model),
            # Activation ranges from the extremes over all calibration images, as onnxruntime's
            # MinMax. NNCF's default averages each image's own extremes (one image per batch
            # here) and clips every image above the average: on mobilenet_v2 trained 8 epochs
            # on shapes the logits moved up to 4.5 (agreement 84%) instead of 1.2 (94%).
            advanced_parameters=AdvancedQuantizationParameters(
                activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX
            ),
        )
        ov.save_model(quantized, str(int8_path), compress_to_fp16=False)
        return
    if fmt != "onnx":
        raise ExportError(f"int8 is for {' and '.join(FORMATS)} files; not {fmt}")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rest = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.rest, None)
            return None if batch is None else {"input": batch}

    prepared = int8_path.with_name(int8_path.stem + ".prep.onnx")
    try:
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(int8_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=output_layers(prepared),
        )
    finally:
        prepared.unlink(missing_ok=True)


def nncf_model_type(model: Any) -> Any:
    """NNCF's transformer scheme (`nncf.ModelType.TRANSFORMER`) for an OpenVINO model with layer
    normalization (OpenVINO's MVN), else its default scheme (None). The transformer scheme runs
    SmoothQuant, which moves activation outliers into the weights, and keeps the normalization's
    own arithmetic in float. On convnext_tiny trained on shapes the int8 logits moved 0.036
    instead of 0.36 (median) and the flips on its 800 test images fell from 78 to 10."""
    import nncf

    if any(op.get_type_name() == "MVN" for op in model.get_ops()):
        return nncf.ModelType.TRANSFORMER
    return None


# Ops that pass a tensor through unchanged in value, between the last layer and the output.
_PASS_THROUGH = frozenset({"Add", "Flatten", "Identity", "Reshape", "Squeeze", "Unsqueeze"})


def output_layers(path: Path) -> list[str]:
    """The nodes of the ONNX file at `path` that compute its outputs (the classifier and what
    follows it), to be left in float32. onnxruntime otherwise quantizes the logits themselves
    to 8 bits over their whole calibration range, a grid that can be coarser than the gap
    between the top two classes and then ties or swaps them (on resnet50 after one epoch:
    steps of 1.4 for a median top-2 gap of 0.03). NNCF leaves outputs unquantized by default
    (`quantize_outputs=False`)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    names: list[str] = []
    wanted = [o.name for o in graph.output]
    while wanted:
        node = producer.get(wanted.pop())
        if node is None or node.name in names:
            continue
        names.append(node.name)
        if node.op_type in _PASS_THROUGH:  # the bias Add after a MatMul, a final Reshape
            wanted.extend(node.input)
    return names


def runner(fmt: str, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function running the file at `path` on a batch (the first output)."""
    if fmt == "openvino":
        from archspec.export.formats import openvino_model

        compiled = openvino_model(path)
        return lambda x: compiled(x)[compiled.outputs[0]]
    from archspec.export.formats import onnx_session

    session = onnx_session(path)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def compare(
    fmt: str, float_path: Path, int8_path: Path, calibration: int, check: torch.Tensor, split: str
) -> Int8Check:
    """Top-1 agreement of the two files on `check` and their batch-1 latency."""
    run_float, run_int8 = runner(fmt, float_path), runner(fmt, int8_path)
    same = total = 0
    for batch in check.split(64):
        x = batch.numpy()
        a, b = run_float(x).argmax(axis=1), run_int8(x).argmax(axis=1)
        same += int((a == b).sum())
        total += len(a)
    one = check[:1].numpy()
    float_ms, int8_ms = _latency(run_float, run_int8, one)
    return Int8Check(same / max(total, 1), total, calibration, float_ms, int8_ms, split)


def _latency(first: Callable, second: Callable, x: np.ndarray) -> tuple[float, float]:
    """Median ms of each, alternating in one process, after a warm-up."""
    times: tuple[list[float], list[float]] = ([], [])
    for fn in (first, second):
        for _ in range(3):
            fn(x)
    for _ in range(TIMING_RUNS):
        for fn, out in zip((first, second), times, strict=True):
            start = time.perf_counter()
            fn(x)
            out.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])
