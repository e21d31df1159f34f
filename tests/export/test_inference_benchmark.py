"""benchmarks/inference.py still runs end to end (exports verified, every path timed) and
prints its table; a small model and input keep it short."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "inference.py"


@pytest.mark.slow
def test_inference_benchmark_prints_a_row_with_every_path():
    args = ["--models", "resnet18", "--batches", "1", "--size", "64", "--repeats", "1"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--warmup", "0", "--threads", "1"],
        env={**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])},
        capture_output=True,
        text=True,
        cwd=SCRIPT.parents[1],
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    header = lines[1].split(" | ")
    assert "onnxruntime ms (x)" in header and "openvino f32 ms (x)" in header
    (row,) = [line for line in lines if line.startswith("| resnet18 | 1 |")]
    cells = row.strip("| ").split(" | ")
    assert len(cells) == len(header)
    assert cells[2] == cells[2].split()[0] + " (1.00x)"  # torchvision eager is the reference
    assert lines[-1].startswith("worst speed-up at batch 1 over the models: best float32 export")
