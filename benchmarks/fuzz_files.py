"""Random-mutation fuzzing of the files archspec reads from outside: bundles (manifest values,
damaged or swapped files, symlinks, FIFOs, deep nesting, forged hashes), image files and study
journals. The promise (archspec/hostile.py): each input is used or refused with an archspec
error within a time bound; never an internal error, never a hang. Prints tried / clean /
accepted / internal errors / hangs per kind, and one example per distinct failure.

    nice python benchmarks/fuzz_files.py --n 10000 [--jobs 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archspec.hostile import (
    KINDS,
    check,
    mutate_bytes,
    mutated_bundle,
    seed_bundle,
    seed_image,
    seed_journal,
)

SEEDS: dict[str, object] = {}


def _init(folder: str, time_limit: float) -> None:
    import logging

    import torch

    torch.set_num_threads(1)
    logging.getLogger("archspec").setLevel(logging.ERROR)  # torn-journal repairs: counted
    base = Path(folder)
    SEEDS.update(bundle=base / "seed-bundle", image=seed_image(), limit=time_limit)
    SEEDS["journal"] = (base / "seed.journal").read_bytes()


def _one(job: tuple[int, str, int]) -> tuple[int, str, object]:
    index, kind, seed = job
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        if kind == "bundle":
            subject = mutated_bundle(SEEDS["bundle"], work / "b", rng)  # type: ignore[arg-type]
        else:
            subject = work / ("x.png" if kind == "image" else "s.log")
            data = SEEDS[kind]
            for _ in range(rng.randint(1, 3)):
                data = mutate_bytes(data, rng)  # type: ignore[arg-type]
            subject.write_bytes(data)  # type: ignore[arg-type]
        return index, kind, check(kind, subject, time_limit_s=float(SEEDS["limit"]))  # type: ignore[arg-type]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="inputs to try")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=20.0, help="seconds per input")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="fuzz-seeds-"))
    seed_bundle(folder / "seed-bundle")
    (folder / "seed.journal").write_bytes(seed_journal(folder))
    rng = random.Random(args.seed)
    jobs = [(i, KINDS[i % len(KINDS)], rng.randrange(2**63)) for i in range(args.n)]
    counts: collections.Counter[str] = collections.Counter()
    failures: dict[str, int] = {}
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(
        args.jobs, _init, (str(folder), args.time_limit), maxtasksperchild=200
    ) as pool:
        for done, (i, kind, outcome) in enumerate(pool.imap_unordered(_one, jobs), 1):
            counts[f"{kind} tried"] += 1
            counts[f"{kind} {outcome.kind}"] += 1
            if not outcome.ok:
                key = f"{kind} {outcome.kind}: {outcome.detail[:160]}"
                if key not in failures:
                    failures[key] = i
                    print(f"[{i}] {key}", file=sys.stderr, flush=True)
            if done % 1000 == 0:
                print(f"... {done} inputs, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    shutil.rmtree(folder, ignore_errors=True)
    seconds = time.perf_counter() - start
    print(f"{args.n} inputs in {seconds:.0f} s (seed {args.seed}, {args.jobs} jobs)")
    print(f"{'':8} {'tried':>7} {'clean':>7} {'accepted':>9} {'internal':>9} {'hangs':>6}")
    for kind in KINDS:
        tried, internal, hangs = (counts[f"{kind} {k}"] for k in ("tried", "internal", "hang"))
        print(
            f"{kind:8} {tried:>7} {tried - internal - hangs:>7} "
            f"{counts[f'{kind} accepted']:>9} {internal:>9} {hangs:>6}"
        )
    print("clean = used, or refused with an archspec error")
    if failures:
        print(f"\n{len(failures)} distinct failures:")
        for key, index in failures.items():
            print(f"  [{index}] {key}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
