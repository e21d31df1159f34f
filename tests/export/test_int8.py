"""int8 export checked on data: calibrated on the bundle's training split, kept only when its
top-1 agrees with float32 on the held-out test split, refused (nothing written) otherwise."""

import pytest
import torch

import archspec
from archspec.errors import ExportError
from archspec.export import export
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
            Training(epochs=2, batch_size=64),
            folder / "run",
        )
    finally:
        torch.set_num_threads(threads)
    return result.bundle


@pytest.mark.parametrize("suffix", [".onnx", ".xml"])
def test_an_int8_file_is_written_with_its_agreement_and_speed(bundle, tmp_path, suffix):
    path = tmp_path / f"m{suffix}"
    result = export(load_source(bundle), path, int8=True, min_agreement=0.5)
    check = result.int8
    assert path.exists() and check is not None
    assert check.split == "test" and check.images == 120 and check.calibration_images == 300
    assert 0.5 <= check.agreement <= 1 and check.float_ms > 0 and check.int8_ms > 0
    assert f"top-1 agrees with float32 on {check.agreement:.2%} of 120 images" in result.describe()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


def test_an_int8_file_below_the_agreement_is_not_written(bundle, tmp_path):
    measured = export(load_source(bundle), tmp_path / "first.onnx", int8=True, min_agreement=0.01)
    agreement = measured.int8.agreement
    if agreement == 1.0:
        pytest.skip("int8 agreed on every test image here: no threshold above it to refuse")
    path = tmp_path / "out" / "m.onnx"
    with pytest.raises(
        ExportError,
        match=r"m\.onnx: not written: int8: top-1 agrees with "
        rf"float32 on {agreement:.2%} .* below the",
    ):
        export(load_source(bundle), path, int8=True, min_agreement=agreement + 1e-9)
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
