"""How fast is static analysis, next to building the torch module?

Median wall time over repeats of: analyze() from spec text (load + graph + cost), from a loaded
Spec (graph + cost), from a built graph (cost pass alone); and archspec.build() of the torch
module from the same Spec (weights allocated and initialized on the CPU).

    python benchmarks/analyze_speed.py [--models resnet50,efficientnet_b0] [--repeats 30]
    python benchmarks/analyze_speed.py --profile resnet50   # hotspots of one analysis
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable

import torch

import archspec
from archspec.analysis import analyze
from archspec.graph import build_graph
from archspec.spec import load_spec
from archspec.zoo import spec_path


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm caches and imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def measure(name: str, repeats: int, build_repeats: int) -> dict[str, float]:
    text = spec_path(name).read_text()
    spec = load_spec(text)
    graph = build_graph(spec)
    return {
        "text": median_ms(lambda: analyze(text), repeats),
        "spec": median_ms(lambda: analyze(spec), repeats),
        "graph": median_ms(lambda: analyze(graph), repeats),
        "build": median_ms(lambda: archspec.build(spec), build_repeats),
        "nodes": len(graph),
    }


def profile(name: str, repeats: int) -> None:
    spec = load_spec(spec_path(name).read_text())
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeats):
        analyze(spec)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="efficientnet_b0,resnet50")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--build-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", metavar="MODEL", help="print the hotspots of analyze()")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.profile:
        profile(args.profile, args.repeats)
        return
    header = (
        f"{'model':<18}{'nodes':>6}{'from text':>12}{'from Spec':>12}{'cost only':>12}"
        f"{'torch build':>13}{'build/analyze':>15}"
    )
    print(f"median ms over {args.repeats} runs (torch build: {args.build_repeats} runs)")
    print(header)
    print("-" * len(header))
    for name in args.models.split(","):
        r = measure(name, args.repeats, args.build_repeats)
        print(
            f"{name:<18}{r['nodes']:>6}{r['text']:>12.2f}{r['spec']:>12.2f}{r['graph']:>12.2f}"
            f"{r['build']:>13.1f}{r['build'] / r['spec']:>14.0f}x"
        )


if __name__ == "__main__":
    main()
