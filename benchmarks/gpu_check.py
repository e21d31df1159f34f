"""What to measure when a GPU is lent, in a few minutes, in one script:

1. images per second of archspec's streamed pipeline on the GPU (a generated 64 px folder,
   default augmentation, cache warm) next to torchvision ImageFolder + DataLoader(num_workers=2,
   pin_memory) doing the same decode/crop/flip/normalize, alternating;
2. one training step (forward, backward, SGD) of archspec's resnet18 against torchvision's
   resnet18, bf16 autocast, channels_last, batch 128 at 224 px: median ms, alternating;
3. trials per GPU-hour of the main job (search/shapes_compound.yaml, a few trials, no
   re-evaluation) with 1 and with 2 worker processes on the one GPU.

    python benchmarks/gpu_check.py                 # all three (about 5 minutes on an H100)
    python benchmarks/gpu_check.py --skip-search   # 1 and 2 only
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]


def pipeline(work: Path, images: int, rounds: int) -> None:
    from data_pipeline import torchvision_epoch

    from archspec.train.config import Data, Training
    from archspec.train.data import load_dataset
    from archspec.train.shapes import write_image_folder

    folder = write_image_folder(work / "folder", images, size=64)
    cfg = Data(dataset=f"imagefolder:{folder}", cache=str(work / "cache"))
    load_dataset(cfg)  # cache warm from here on
    device = torch.device("cuda")
    rates: dict[str, list[float]] = {"torchvision": [], "archspec (cuda)": []}
    for _ in range(rounds):
        seconds, count = torchvision_epoch(folder, 56, 128)
        rates["torchvision"].append(count / seconds)
        start = time.perf_counter()
        split = load_dataset(cfg).split((56, 56), 3, device, Training())
        perm = torch.randperm(len(split.train))
        steps = [perm[s * 128 : (s + 1) * 128] for s in range(len(perm) // 128)]
        for x, _ in split.train.batches(steps):
            x.sum()
        torch.cuda.synchronize()
        rates["archspec (cuda)"].append(len(steps) * 128 / (time.perf_counter() - start))
    for name, values in rates.items():
        print(f"pipeline {name:16s} {statistics.median(values):8.0f} img/s")
    ratio = statistics.median(rates["archspec (cuda)"]) / statistics.median(rates["torchvision"])
    print(f"pipeline ratio archspec / torchvision: {ratio:.2f}x")


def train_step(rounds: int, steps: int) -> None:
    import torchvision

    import archspec

    device = torch.device("cuda")
    models = {
        "archspec resnet18": archspec.create_model("resnet18"),
        "torchvision resnet18": torchvision.models.resnet18(),
    }
    x = torch.randn(128, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (128,), device=device)
    times: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():
        model.to(device=device, memory_format=torch.channels_last).train()
    optimizers = {
        n: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for n, m in models.items()
    }
    for r in range(rounds + 1):
        for name, model in models.items():
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(steps):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = torch.nn.functional.cross_entropy(model(x), y)
                optimizers[name].zero_grad(set_to_none=True)
                loss.backward()
                optimizers[name].step()
            torch.cuda.synchronize()
            if r:  # round 0 warms up (cuDNN autotuning, allocator)
                times[name].append((time.perf_counter() - start) / steps * 1000)
    for name, values in times.items():
        print(f"train step {name:22s} {statistics.median(values):7.2f} ms (bf16, channels_last, "
              "batch 128, 224 px)")  # fmt: skip
    a, t = (statistics.median(v) for v in times.values())
    print(f"train step ratio archspec / torchvision: {a / t:.3f}")


def search_rate(work: Path, trials: int) -> None:
    for workers in (1, 2):
        storage = f"sqlite:///{work / f'gpu_check_{workers}.db'}"
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "archspec", "search", str(ROOT / "search" / "shapes_compound.yaml"),  # noqa: E501
             "--trials", str(trials), "--workers", str(workers), "--storage", storage, "-q",
             "-o", str(work / f"best_{workers}.yaml")],
            cwd=work, capture_output=True, text=True,
        )  # fmt: skip
        hours = (time.perf_counter() - start) / 3600
        if result.returncode != 0:
            print(f"search with {workers} worker(s) failed:\n{result.stderr[-1500:]}")
            continue
        rate = trials / hours
        print(
            f"main job, {workers} worker(s) per GPU: {trials} trials (+ base, family and "
            f"re-evaluation) in {hours * 3600:.0f} s: {rate:.0f} trials per GPU-hour"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device")
    print(torch.cuda.get_device_name(), f"torch {torch.__version__}")
    work = Path(tempfile.mkdtemp(prefix="archspec-gpu-"))
    os.environ.setdefault("ARCHSPEC_CACHE", str(work / "cache"))
    try:
        pipeline(work, args.images, args.rounds)
        train_step(args.rounds, args.steps)
        if not args.skip_search:
            search_rate(work, args.trials)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
