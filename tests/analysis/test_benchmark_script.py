"""benchmarks/analyze_speed.py still runs and prints its table."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "analyze_speed.py"


def test_analyze_speed_prints_a_row_per_model():
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--models",
            "resnet18",
            "--repeats",
            "1",
            "--build-repeats",
            "1",
        ],
        env={**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])},  # also without `pip install`
        capture_output=True,
        text=True,
        check=True,
        cwd=SCRIPT.parents[1],
        timeout=300,
    )
    lines = result.stdout.splitlines()
    assert "from Spec" in lines[1] and "torch build" in lines[1]
    (row,) = [line for line in lines if line.startswith("resnet18")]
    assert len(row.split()) == 7
