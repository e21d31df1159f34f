"""How long does `archspec validate` take, next to `python -c "import torch"`?

Runs, interleaved in fresh processes, `archspec validate SPEC`, `python -c "import torch"` and
`python -c "pass"` (the interpreter's own start), and prints the median wall time of each and
the ratio validate / import torch. validate must not import torch (goal: under 0.5 s here).

    python benchmarks/validate_speed.py [--spec specs/resnet50.yaml] [--repeats 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def wall_s(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/resnet50.yaml")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    entry = shutil.which("archspec")
    archspec = [entry] if entry else [sys.executable, "-m", "archspec"]
    commands = {
        f"archspec validate {args.spec}": [*archspec, "validate", args.spec],
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        'python -c "pass"': [sys.executable, "-c", "pass"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values():  # warm the file cache once
        wall_s(command)
    for _ in range(args.repeats):
        for name, command in commands.items():
            times[name].append(wall_s(command))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"median of {args.repeats} runs each, interleaved, fresh processes")
    for name, median in medians.items():
        spread = max(times[name]) - min(times[name])
        print(f"  {name:<40} {median:6.3f} s  (spread {spread:.3f} s)")
    validate, torch = list(medians.values())[:2]
    print(f"validate / import torch = {validate / torch:.2f}")


if __name__ == "__main__":
    main()
