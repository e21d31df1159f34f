"""CPU inference paths side by side: torchvision eager, archspec eager, archspec optimized
(BatchNorm folded, layout measured), torch.export (.pt2) and onnxruntime on the exported ONNX.

All paths hold the same weights (torchvision's, loaded into the archspec model) and run in one
process on the same input, round-robin with the order rotated every repeat, after a warm-up, so
drift in clock speed or machine load hits all alike. The exports are written by
`archspec.export.export` with optimize (verified against the eager model as they are written).
Each path's speed-up is the median over repeats of torchvision_ms / path_ms from the same round;
onnxruntime runs with every graph optimization and the same number of intra-op threads as
torch. The goal: the best exported path >= 2x torchvision eager at batch 1.

    PYTHONPATH=. python benchmarks/inference.py --models resnet50 --batches 1 --repeats 5
    nice PYTHONPATH=. python benchmarks/inference.py          # the four models, batch 1 and 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision

import archspec
from archspec.export import export, from_spec, onnx_session, optimize
from archspec.export.formats import load_pt2

MODELS = ("resnet50", "efficientnet_b0", "mobilenet_v2", "convnext_tiny")
PATHS = ("torchvision eager", "archspec eager", "archspec optimized", "torch.export", "onnxruntime")
EXPORTED = ("torch.export", "onnxruntime")
TOLERANCE = 1e-3  # max abs difference from torchvision's output, before timing


def build_paths(name: str, folder: Path, size: int) -> dict[str, Callable[[torch.Tensor], object]]:
    """Every path of zoo model `name` as a function of the input, with torchvision's weights."""
    reference = getattr(torchvision.models, name)(weights=None).eval()
    spec = archspec.load_spec(archspec.zoo.spec_path(name))
    source = from_spec(spec, f"{name} with torchvision's initial weights")
    archspec.load_torchvision_state_dict(source.model, reference.state_dict())
    example = torch.randn(1, 3, size, size)
    optimized = optimize(source.model, example).module
    pt2 = export(source, folder / f"{name}.pt2", optimize_graph=True)
    onnx = export(source, folder / f"{name}.onnx", optimize_graph=True)
    program = load_pt2(pt2.path)
    session = onnx_session(onnx.path, torch.get_num_threads())
    input_name = session.get_inputs()[0].name
    return {
        "torchvision eager": reference,
        "archspec eager": source.model,
        "archspec optimized": optimized,
        "torch.export": program,
        "onnxruntime": lambda x: session.run(None, {input_name: x.numpy()})[0],
    }


def check(name: str, paths: dict[str, Callable], size: int) -> None:
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        want = paths["torchvision eager"](x)
        for path, forward in paths.items():
            diff = (torch.as_tensor(forward(x)) - want).abs().max().item()
            if diff > TOLERANCE:
                raise SystemExit(f"{name} {path}: output differs from torchvision by {diff:.2e}")


def measure(
    paths: dict[str, Callable], batch: int, size: int, warmup: int, repeats: int
) -> dict[str, tuple[float, float]]:
    """path -> (median ms, median speed-up over torchvision eager in the same round)."""
    x = torch.randn(batch, 3, size, size)
    names = list(paths)
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode():
        for _ in range(warmup):
            for n in names:
                paths[n](x)
        for i in range(repeats):
            order = names[i % len(names) :] + names[: i % len(names)]
            for n in order:
                start = time.perf_counter()
                paths[n](x)
                times[n].append((time.perf_counter() - start) * 1e3)
    base = times["torchvision eager"]
    return {
        n: (
            statistics.median(t),
            statistics.median(b / a for a, b in zip(t, base, strict=True)),
        )
        for n, t in times.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo names")
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and onnxruntime")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"{torch.get_num_threads()} threads (torch and onnxruntime), input {args.size}, "
        f"median of {args.repeats} rotating rounds after {args.warmup}; float32, CPU"
    )
    print("| model | batch | " + " | ".join(f"{p} ms (x)" for p in PATHS) + " | best exported |")
    print("|---|---:|" + "---:|" * len(PATHS) + "---:|")
    worst = float("inf")
    with tempfile.TemporaryDirectory(prefix="archspec-bench-") as folder:
        for name in args.models.split(","):
            paths = build_paths(name, Path(folder), args.size)
            check(name, paths, args.size)
            for batch in batches:
                row = measure(paths, batch, args.size, args.warmup, args.repeats)
                best = max(row[p][1] for p in EXPORTED)
                if batch == 1:
                    worst = min(worst, best)
                cells = [f"{row[p][0]:.1f} ({row[p][1]:.2f}x)" for p in PATHS]
                print(f"| {name} | {batch} | " + " | ".join(cells) + f" | {best:.2f}x |")
                sys.stdout.flush()
            del paths
    if worst != float("inf"):
        print(f"worst best-exported speed-up at batch 1: {worst:.2f}x (goal >= 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
