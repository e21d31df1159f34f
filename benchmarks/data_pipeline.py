"""Images per second of archspec's image pipeline against torchvision's `ImageFolder` +
`DataLoader(num_workers=2, pin_memory=True)`, on a generated folder of JPEGs (the shapes set,
archspec/train/shapes.py), both doing the same work per training image: decode (Pillow, RGB),
random-resized crop (scale 0.08-1, ratio 3/4-4/3) to the input size, horizontal flip, float
conversion and per-channel normalization, in shuffled batches.

archspec: cold = decoding the folder into a fresh image cache (parallel workers) and then one
epoch of batches read by index from the memory-mapped cache and augmented per batch; warm = one
epoch from the existing cache. torchvision decodes every epoch, so it has one figure. The sides
alternate round by round in one process; medians are printed, and the ratios archspec /
torchvision (above 1: archspec is faster).

    python benchmarks/data_pipeline.py                       # 4000 images of 64 px -> 56 px
    python benchmarks/data_pipeline.py --images 8000 --rounds 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from archspec.train.config import Data, Training
from archspec.train.data import load_dataset
from archspec.train.shapes import write_image_folder


def archspec_epoch(
    folder: Path, cache: Path, size: int, batch: int, load: int
) -> tuple[float, int]:
    """Seconds to load the dataset (decoding it when the cache is cold) and draw one epoch of
    augmented, normalized training batches."""
    start = time.perf_counter()
    data = load_dataset(Data(dataset=f"imagefolder:{folder}", image_size=load, cache=str(cache)))
    split = data.split((size, size), 3, "cpu", Training(batch_size=batch))
    n = len(split.train)
    perm = torch.randperm(n)
    steps = [perm[s * batch : (s + 1) * batch] for s in range(n // batch)]
    for x, _ in split.train.batches(steps):
        x.sum()  # the batch is consumed, as a training step would
    return time.perf_counter() - start, (n // batch) * batch


def torchvision_epoch(folder: Path, size: int, batch: int) -> tuple[float, int]:
    from torch.utils.data import DataLoader
    from torchvision import datasets
    from torchvision.transforms import v2

    transform = v2.Compose(
        [
            v2.RandomResizedCrop(size, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25]),
        ]
    )
    start = time.perf_counter()
    dataset = datasets.ImageFolder(str(folder), transform=transform)
    loader = DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=2, pin_memory=True, drop_last=True
    )
    count = 0
    for x, _ in loader:
        x.sum()
        count += len(x)
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--load", type=int, default=64, help="image side on disk and in cache")
    parser.add_argument("--size", type=int, default=56, help="training input side")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the archspec side (the training process's; DataLoader workers "
        "use one each)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="archspec-bench-"))
    try:
        folder = write_image_folder(work / "folder", args.images, size=args.load)
        times: dict[str, list[float]] = {
            "torchvision": [],
            "archspec cold": [],
            "archspec warm": [],
        }
        for r in range(args.rounds):
            cache = work / f"cache-{r}"
            seconds, count = torchvision_epoch(folder, args.size, args.batch)
            times["torchvision"].append(count / seconds)
            seconds, count = archspec_epoch(folder, cache, args.size, args.batch, args.load)
            times["archspec cold"].append(count / seconds)
            seconds, count = archspec_epoch(folder, cache, args.size, args.batch, args.load)
            times["archspec warm"].append(count / seconds)
            print(
                f"round {r + 1}: " + "  ".join(f"{k} {v[-1]:.0f} img/s" for k, v in times.items())
            )
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"\n{args.images} images {args.load} px -> {args.size} px, batch {args.batch}, "
            f"archspec torch threads {args.threads}, medians of {args.rounds} rounds "
            "(images per second):"
        )
        for k, v in med.items():
            print(f"  {k:14s} {v:8.0f}")
        print(
            f"ratio cold: archspec / torchvision = {med['archspec cold'] / med['torchvision']:.2f}x"
        )
        print(
            f"ratio warm: archspec / torchvision = {med['archspec warm'] / med['torchvision']:.2f}x"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
