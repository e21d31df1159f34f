"""int8 export checked on data: calibrated on the bundle's training split, kept only when its
top-1 agrees with float32 on the held-out test split, refused (nothing written) otherwise."""

import dataclasses

import onnx
import pytest
import torch

import archspec
from archspec.errors import ExportError
from archspec.export import export, int8
from archspec.export.int8 import MIN_AGREEMENT
from archspec.sources import load_source
from archspec.train.config import Data, Training
from archspec.train.fit import fit
from tests.export.conftest import TINY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = fit(
            archspec.load_spec(TINY),
            Data(dataset="digits", limit=600),
            # trained to ~95% test accuracy: agreement between two near-random classifiers
            # (top-2 logits almost tied) says nothing about the quantization
            Training(epochs=10, batch_size=64),
            folder / "run",
        )
    finally:
        torch.set_num_threads(threads)
    return result.bundle


@pytest.fixture(scope="module")
def written(bundle, tmp_path_factory):
    """suffix -> (folder, export result) of the bundle's int8 onnx file and OpenVINO IR."""
    out = {}
    for suffix in (".onnx", ".xml"):
        folder = tmp_path_factory.mktemp(suffix[1:])
        out[suffix] = folder, export(load_source(bundle), folder / f"m{suffix}", int8=True,
                                     min_agreement=0.5)  # fmt: skip
    return out


@pytest.mark.parametrize("suffix", [".onnx", ".xml"])
def test_an_int8_file_is_written_with_its_agreement_and_speed(written, suffix):
    folder, result = written[suffix]
    check = result.int8
    assert (folder / f"m{suffix}").exists() and check is not None
    assert check.split == "test" and check.images == 120 and check.calibration_images == 300
    assert check.float_ms > 0 and check.int8_ms > 0
    assert f"top-1 agrees with float32 on {check.agreement:.2%} of 120 images" in result.describe()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporaries
    # The default threshold (99% of 120: at most one flip) holds on a trained classifier: the
    # file is written without lowering it. A quantizer that collapses (logits on an 8-bit grid,
    # an unfolded BatchNorm, calibration inputs unlike the model's) falls far below; NNCF with
    # its fast bias correction flipped 2 (98.3%).
    assert check.agreement >= MIN_AGREEMENT


def test_the_int8_onnx_file_computes_its_logits_in_float32(written):
    folder, _ = written[".onnx"]
    graph = onnx.load(str(folder / "m.onnx")).graph
    (output,) = graph.output
    (last,) = [node for node in graph.node if output.name in node.output]
    assert last.op_type == "Gemm"  # not DequantizeLinear: the logits are not on an 8-bit grid
    assert not [
        n for n in graph.node if n.op_type == "QuantizeLinear" and last.output[0] in n.input
    ]


def test_an_int8_file_below_the_agreement_is_not_written(bundle, tmp_path, monkeypatch):
    from archspec.export import pipeline

    measured = pipeline.compare_int8

    def worse(*args, **kwargs):  # as if 60% of the test images changed class
        return dataclasses.replace(measured(*args, **kwargs), agreement=0.4)

    monkeypatch.setattr(pipeline, "compare_int8", worse)
    path = tmp_path / "out" / "m.onnx"
    with pytest.raises(
        ExportError,
        match=r"m\.onnx: not written: int8: top-1 agrees with float32 on 40\.00% of 120 "
        r"images .* below the 99% asked for",
    ):
        export(load_source(bundle), path, int8=True)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_int8_on_a_named_dataset_checks_all_of_it(bundle, tmp_path):
    result = export(
        load_source(bundle), tmp_path / "m.onnx", int8=True, data=Data(dataset="digits"),
        min_agreement=0.5,
    )  # fmt: skip
    assert result.int8.split == "all" and result.int8.images == 1797


def test_int8_needs_a_bundle_and_an_int8_format(tmp_path):
    with pytest.raises(ExportError, match="int8 export needs a trained bundle"):
        export(load_source(TINY), tmp_path / "m.onnx", int8=True)
    with pytest.raises(ExportError, match="int8 is for onnx and openvino files; not pt2"):
        export(load_source(TINY), tmp_path / "m.pt2", int8=True)


LAYER_NORM = """
name: ln
input: {channels: 3, size: 16}
layers:
  - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: permute, to: HWC}
  - {op: layernorm}
  - {op: linear, out_features: 8}
  - {op: permute, to: CHW}
  - {op: adaptive_avgpool, output_size: 1}
  - {op: flatten}
  - {op: linear, out_features: 4}
"""


@pytest.mark.parametrize(("spec", "scheme"), [("tiny", None), ("layer_norm", "TRANSFORMER")])
def test_openvino_int8_uses_nncfs_transformer_scheme_exactly_where_there_is_layer_norm(
    spec, scheme, tmp_path
):
    import nncf
    import openvino as ov

    if spec == "layer_norm":
        (tmp_path / "ln.yaml").write_text(LAYER_NORM)
    source = load_source(TINY if spec == "tiny" else tmp_path / "ln.yaml")
    path = tmp_path / "m.xml"
    export(source, path)
    chosen = int8.nncf_model_type(ov.Core().read_model(str(path)))
    assert chosen == (scheme and nncf.ModelType[scheme])
