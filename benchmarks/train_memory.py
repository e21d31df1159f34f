"""Peak anonymous memory and wall time of `archspec train` on generated image folders (the
shapes set as 64 px JPEGs, archspec/train/shapes.py), one epoch each, in a subprocess whose
RssAnon (and its decode workers') is sampled every 20 ms from /proc. The image cache is built
first (its decode is timed and reported apart), so the epoch figures are of training from it.

    python benchmarks/train_memory.py                      # 4,000 and 32,000 images: the ratio
    python benchmarks/train_memory.py --images 100000      # one epoch on 100,000 images
    python benchmarks/train_memory.py --images 100000 --input 16   # the net at 16 px (faster)

The images are decoded into the cache at 64 px (`data.image_size=64`) and the net trains at
`--input` px (default 64: the spec scaled with `input.size=`).

The data path must not grow with the dataset: memory-mapped cache pages are file-backed (page
cache), anonymous memory is the batch, the prefetch depth, the labels and the model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "search" / "bases" / "shapes_resnet.yaml"
SIZE = 64  # the JPEGs and the cache's load size


def anon_kib(pid: int) -> int:
    """RssAnon of `pid` and its descendants, in KiB (0 once they are gone)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return total


def run(command: list[str], env: dict) -> tuple[float, int, str]:
    """(wall seconds, peak anonymous KiB of the process tree, stderr tail)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    peak = 0

    def sample() -> None:
        nonlocal peak
        while proc.poll() is None:
            peak = max(peak, anon_kib(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err[-2000:]}")
    return time.perf_counter() - start, peak, (out + err)[-400:]


def measure(
    work: Path, count: int, epochs: int, batch: int, side: int
) -> tuple[float, float, int, float]:
    folder = work / f"folder-{count}"
    began = time.perf_counter()
    from archspec.train.shapes import write_image_folder

    write_image_folder(folder, count, size=SIZE)
    made = time.perf_counter() - began
    env = dict(os.environ, ARCHSPEC_CACHE=str(work / "cache"))
    data = f"imagefolder:{folder}"
    decode = [sys.executable, "-c", "from archspec.train import Data, load_dataset; "
              f"load_dataset(Data(dataset={data!r}, image_size={SIZE}))"]  # fmt: skip
    decode_s, decode_peak, _ = run(decode, env)
    out = str(work / f"run-{count}")
    train = [sys.executable, "-m", "archspec", "train", str(SPEC), f"input.size={side}",
             f"data.image_size={SIZE}", "--data", data, "--epochs",
             str(epochs), "--batch-size", str(batch), "-q", "-o", out]  # fmt: skip
    wall, peak, _ = run(train, env)
    print(f"{count:>7} images: made in {made:.0f} s; cache decode {decode_s:.1f} s (peak anon "
          f"{decode_peak / 1024:.0f} MiB); archspec train {epochs} epoch(s) at {side} px: "
          f"{wall:.1f} s wall, "
          f"peak anonymous memory {peak / 1024:.0f} MiB", flush=True)  # fmt: skip
    return wall, peak, decode_s, decode_peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[4000, 32000])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--input", type=int, default=SIZE, help="the net's input side")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="archspec-mem-"))
    try:
        peaks = [measure(work, n, args.epochs, args.batch, args.input)[1] for n in args.images]
        if len(peaks) > 1:
            print(f"peak anonymous memory, {args.images[-1]} over {args.images[0]} images: "
                  f"{peaks[-1] / peaks[0]:.2f}x")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
