"""CPU inference paths side by side: torchvision eager, archspec eager, archspec optimized
(BatchNorm folded, layout measured), torch.export (.pt2), onnxruntime on the exported ONNX, and
OpenVINO on the exported IR, in float32 and, where the CPU has bfloat16 instructions, in bf16
(OpenVINO's own default on such CPUs; a precision change, so it is its own column with its max
abs difference from torchvision over the largest |output|).

All paths hold the same weights (torchvision's, loaded into the archspec model) and run in one
process on the same input, in rounds, after a warm-up, so drift in clock speed or machine load
hits all alike; the order is shuffled every round and calls are 50 ms apart, so no path always
runs right after another one's spinning threads. The exports are written by
`archspec.export.export` with optimize (verified against the eager model as they are written).
Each path's speed-up is the median over repeats of torchvision_ms / path_ms from the same round;
onnxruntime and OpenVINO run with the same number of threads as torch. The goal: the best
exported path >= 2x torchvision eager at batch 1.

With --int8, two more paths: the same ONNX file and IR quantized to int8 (onnxruntime static
QDQ, NNCF), calibrated on random inputs (speed does not depend on the weights' values), left
out of the float32 output check; and a second table of top-1 agreement with float32, measured
on bundles trained on `shapes` at 64 px (AGREEMENT_RECIPE, each model's AGREEMENT_BUDGET of
images and epochs), on their test split, beside the float model's own test accuracy. A network
trained one epoch is near chance with its top two logits almost tied (resnet50: 4% accuracy,
median gap 0.03): any rounding swaps them, so its agreement says nothing about the
quantization. --agreement-only prints that table alone; --bundles DIR keeps the trained bundles
there and reuses them on the next run.

    PYTHONPATH=. python benchmarks/inference.py --models resnet50 --batches 1 --repeats 5
    nice PYTHONPATH=. python benchmarks/inference.py          # the four models, batch 1 and 8
    nice PYTHONPATH=. python benchmarks/inference.py --batches 1 --int8 --threads 2
    nice PYTHONPATH=. python benchmarks/inference.py --agreement-only --bundles /tmp/int8-bundles
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from random import Random

import torch
import torchvision

import archspec
from archspec.export import export, from_spec, onnx_session, openvino_model, optimize
from archspec.export.formats import load_pt2
from archspec.train.config import Data, Training
from archspec.zoo import spec_path

MODELS = ("resnet50", "efficientnet_b0", "mobilenet_v2", "convnext_tiny")
FLOAT32 = ("torch.export", "onnxruntime", "openvino f32")  # the exported float32 paths
BF16 = "openvino bf16"  # the same IR at OpenVINO's CPU default where the CPU has bfloat16
INT8 = ("onnxruntime int8", "openvino int8")  # quantized: speed here, agreement on trained bundles
# The agreement bundles: trained, not near chance (on a network whose top two logits are almost
# tied any rounding swaps its answer, and agreement says nothing about the quantization).
# The recipe is one; the budget (shapes images, epochs) is each model's, so that each trains in
# about 10-15 minutes on a loaded 2-core CPU.
AGREEMENT_RECIPE = Training(batch_size=64, warmup_epochs=1)
AGREEMENT_BUDGET = {
    "resnet50": (3000, 10),
    "efficientnet_b0": (4000, 15),
    "mobilenet_v2": (4000, 15),
    "convnext_tiny": (4000, 5),
}
OTHER_BUDGET = (2000, 10)
PATHS = ("torchvision eager", "archspec eager", "archspec optimized", *FLOAT32, BF16, *INT8)
TOLERANCE = 1e-3  # float32: max abs difference from torchvision's output, before timing
BF16_TOLERANCE = 3e-2  # bfloat16: max abs difference over the largest |output|
# Seconds between two timed calls. onnxruntime's and OpenMP's worker threads spin for a while
# after a run; on 2 cores that steals the next path's CPU. A fixed rotation put torchvision
# right after onnxruntime in 4 rounds of 5 and inflated every speed-up by up to 1.5x.
PAUSE = 0.05


def has_bf16() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def build_paths(
    name: str, folder: Path, size: int, int8: bool = False
) -> dict[str, Callable[[torch.Tensor], object]]:
    """Every path of zoo model `name` as a function of the input, with torchvision's weights."""
    reference = getattr(torchvision.models, name)(weights=None).eval()
    spec = archspec.load_spec(spec_path(name))
    spec = spec.model_copy(update={"input": spec.input.model_copy(update={"size": size})})
    source = from_spec(spec, f"{name} with torchvision's initial weights")
    archspec.load_torchvision_state_dict(source.model, reference.state_dict())
    example = torch.randn(1, 3, size, size)
    optimized = optimize(source.model, example).module
    pt2 = export(source, folder / f"{name}.pt2", optimize_graph=True)
    onnx = export(source, folder / f"{name}.onnx", optimize_graph=True)
    ir = export(source, folder / f"{name}.xml", optimize_graph=True)
    program = load_pt2(pt2.path)
    session = onnx_session(onnx.path, torch.get_num_threads())
    input_name = session.get_inputs()[0].name
    paths = {
        "torchvision eager": reference,
        "archspec eager": source.model,
        "archspec optimized": optimized,
        "torch.export": program,
        "onnxruntime": lambda x: session.run(None, {input_name: x.numpy()})[0],
    }
    for path, precision in (("openvino f32", "f32"), (BF16, "bf16")):
        if precision == "bf16" and not has_bf16():
            continue
        compiled = openvino_model(ir.path, precision)
        paths[path] = (lambda c: lambda x: c(x.numpy())[c.output(0)])(compiled)
    if int8:
        from archspec.export.int8 import quantize, runner

        calibration = torch.randn(32, 3, size, size, generator=torch.Generator().manual_seed(0))
        for path, fmt, float_file in (
            ("onnxruntime int8", "onnx", onnx.path),
            ("openvino int8", "openvino", ir.path),
        ):
            target = folder / f"{name}.int8{float_file.suffix}"
            quantize(fmt, float_file, target, calibration)
            run = runner(fmt, target)
            paths[path] = (lambda r: lambda x: r(x.numpy()))(run)
    return paths


def agreement(name: str, bundles: Path) -> tuple[float, dict[str, tuple[float, int]]]:
    """(float32 test accuracy, int8 path -> (top-1 agreement with float32 on the test split,
    images)) for zoo model `name` trained on `shapes` at 64 px (3 channels: grey repeated) with
    AGREEMENT_RECIPE for its AGREEMENT_BUDGET, exported as the speed table's files are
    (optimized). The bundle is trained into bundles/NAME-IMAGESxEPOCHS once and reused after."""
    from archspec.bundle import is_bundle, read_manifest
    from archspec.export.pipeline import export as export_file
    from archspec.sources import load_source
    from archspec.train.fit import BUNDLE_DIR, fit

    samples, epochs = AGREEMENT_BUDGET.get(name, OTHER_BUDGET)
    run = bundles / f"{name}-{samples}x{epochs}"
    if not is_bundle(run / BUNDLE_DIR):
        spec = archspec.load_spec(spec_path(name))
        spec = spec.model_copy(update={"input": spec.input.model_copy(update={"size": 64})})
        recipe = AGREEMENT_RECIPE.model_copy(update={"epochs": epochs})
        fit(spec, Data(dataset="shapes", num_samples=samples), recipe, run, overwrite=True)
    source = load_source(run / BUNDLE_DIR)
    out = {}
    with tempfile.TemporaryDirectory(prefix="archspec-int8-") as folder:
        for path, suffix in (("onnxruntime int8", ".onnx"), ("openvino int8", ".xml")):
            result = export_file(
                source, Path(folder) / f"{name}{suffix}", int8=True, optimize_graph=True,
                min_agreement=1e-9,
            )  # fmt: skip
            out[path] = (result.int8.agreement, result.int8.images)
    return read_manifest(run / BUNDLE_DIR).metrics["test_accuracy"], out


def check(name: str, paths: dict[str, Callable], size: int) -> float:
    """Every path against torchvision on one input; the bf16 path's max abs difference over
    the largest |output| (returned)."""
    x = torch.randn(2, 3, size, size)
    relative = float("nan")
    with torch.inference_mode():
        want = paths["torchvision eager"](x)
        scale = want.abs().max().item()
        for path, forward in paths.items():
            if path in INT8:
                continue  # int8 changes the numbers: judged by top-1 agreement instead
            diff = (torch.as_tensor(forward(x)) - want).abs().max().item()
            if path == BF16:
                relative = diff / scale
                if relative > BF16_TOLERANCE:
                    raise SystemExit(f"{name} {path}: {relative:.2e} of the output's scale off")
            elif diff > TOLERANCE:
                raise SystemExit(f"{name} {path}: output differs from torchvision by {diff:.2e}")
    return relative


def measure(
    paths: dict[str, Callable], batch: int, size: int, warmup: int, repeats: int
) -> dict[str, tuple[float, float]]:
    """path -> (median ms, median speed-up over torchvision eager in the same round)."""
    x = torch.randn(batch, 3, size, size)
    random = Random(batch)  # the order of the paths, shuffled every round
    names = list(paths)
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode():
        for _ in range(warmup):
            for n in names:
                paths[n](x)
        for _ in range(repeats):
            order = random.sample(names, len(names))
            for n in order:
                time.sleep(PAUSE)  # the previous runtime's worker threads stop spinning
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


def speed_table(models: list[str], args: argparse.Namespace, folder: Path) -> dict[str, float]:
    """Print the speed table; the worst batch-1 speed-ups over the models ("float32": best
    float32 export, "any": best of any path)."""
    batches = [int(b) for b in args.batches.split(",")]
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"{torch.get_num_threads()} threads (torch and onnxruntime), input {args.size}, "
        f"median of {args.repeats} shuffled rounds after {args.warmup}; CPU"
    )
    shown = [p for p in PATHS if args.int8 or p not in INT8]
    print(
        "| model | batch | "
        + " | ".join(f"{p} ms (x)" for p in shown)
        + " | best float32 | bf16 max diff |"
    )
    print("|---|---:|" + "---:|" * (len(shown) + 2))
    worst = {"float32": float("inf"), "any": float("inf")}
    for name in models:
        paths = build_paths(name, folder, args.size, args.int8)
        relative = check(name, paths, args.size)
        for batch in batches:
            row = measure(paths, batch, args.size, args.warmup, args.repeats)
            best = max(row[p][1] for p in FLOAT32)
            if batch == 1:
                worst["float32"] = min(worst["float32"], best)
                worst["any"] = min(worst["any"], max(v[1] for v in row.values()))
            cells = [f"{row[p][0]:.1f} ({row[p][1]:.2f}x)" if p in row else "-" for p in shown]
            print(
                f"| {name} | {batch} | " + " | ".join(cells) + f" | {best:.2f}x | {relative:.1e} |"
            )
            sys.stdout.flush()
        del paths
    return worst


def agreement_table(models: list[str], bundles: Path) -> None:
    print(
        "\ntop-1 agreement of int8 with float32 on the test split (20%) of shapes at 64 px "
        "(32 classes; chance 3%)"
    )
    print("| model | images x epochs | float32 test accuracy | " + " | ".join(INT8) + " | s |")
    print("|---|---:|---:|" + "---:|" * (len(INT8) + 1))
    for name in models:
        start = time.perf_counter()
        accuracy, agreed = agreement(name, bundles)
        samples, epochs = AGREEMENT_BUDGET.get(name, OTHER_BUDGET)
        cells = [f"{agreed[p][0]:.2%} of {agreed[p][1]}" for p in INT8]
        took = time.perf_counter() - start
        print(
            f"| {name} | {samples} x {epochs} | {accuracy:.2%} | "
            + " | ".join(cells)
            + f" | {took:.0f} |"
        )
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo names")
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and onnxruntime")
    parser.add_argument("--int8", action="store_true", help="add the int8 paths and agreement")
    parser.add_argument(
        "--agreement-only", action="store_true", help="only the int8 agreement table, no timing"
    )
    parser.add_argument(
        "--bundles", type=Path,
        help="--int8: train the agreement bundles into this folder once and reuse them "
        "(default: a temporary folder)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = args.models.split(",")
    worst = {"float32": float("inf"), "any": float("inf")}
    with tempfile.TemporaryDirectory(prefix="archspec-bench-") as folder:
        if not args.agreement_only:
            worst = speed_table(models, args, Path(folder))
        if args.int8 or args.agreement_only:
            agreement_table(models, args.bundles or Path(folder))
    if worst["float32"] != float("inf"):
        print(
            f"worst speed-up at batch 1 over the models: best float32 export "
            f"{worst['float32']:.2f}x, best of any path {worst['any']:.2f}x (goal >= 2x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
