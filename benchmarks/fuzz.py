"""Random-mutation fuzzing of specs and search definitions against archspec's promises.

Each input is a shipped spec (or search definition) after 1-3 random mutations; the properties
(archspec/testing.py) are the ones the hypothesis tests check: only ArchspecError escapes, each
input finishes within a time bound, an accepted spec builds and its forward pass has the static
shape, scaling it never gives an invalid spec. Prints tried / clean / accepted / internal errors
/ hangs, and one example per distinct internal error. The node budget is lowered to 5,000 for
the run (ARCHSPEC_MAX_NODES; the budget itself is tested in tests/spec/test_limits.py), so that
no single input spends minutes expanding a legal 50,000-node network.

    nice python benchmarks/fuzz.py --n 10000 [--jobs 2] [--search-share 0.3] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archspec.testing import Outcome, check_search, check_spec, mutated, seed_texts

SETTINGS: dict[str, object] = {}


def _init(settings: dict[str, object]) -> None:
    SETTINGS.update(settings)
    os.environ.setdefault("ARCHSPEC_MAX_NODES", str(settings["max_nodes"]))


def _check(job: tuple[int, str, str, str]) -> tuple[int, str, str, str, Outcome]:
    index, kind, name, text = job
    limit = float(SETTINGS["time_limit"])  # type: ignore[arg-type]
    if kind == "spec":
        outcome = check_spec(text, run=bool(SETTINGS["run"]), time_limit_s=limit)
    else:
        outcome = check_search(text, time_limit_s=limit)
    return index, kind, name, text, outcome


def _inputs(n: int, seed: int, search_share: float) -> Iterator[tuple[int, str, str, str]]:
    rng = random.Random(seed)
    seeds = {"spec": seed_texts("spec"), "search": seed_texts("search")}
    for i in range(n):
        kind = "search" if rng.random() < search_share else "spec"
        name, text = rng.choice(seeds[kind])
        yield i, kind, name, mutated(text, rng, kind, steps=rng.randint(1, 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="inputs to try")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--search-share", type=float, default=0.3, help="share of search inputs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-run", action="store_true", help="do not build and run accepted specs")
    parser.add_argument("--save", type=Path, help="write each failing input to this folder")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per input")
    parser.add_argument("--max-nodes", type=int, default=5_000, help="ARCHSPEC_MAX_NODES")
    args = parser.parse_args()

    settings = {"time_limit": args.time_limit, "run": not args.no_run, "max_nodes": args.max_nodes}
    counts: collections.Counter[str] = collections.Counter()
    failures: dict[str, str] = {}
    start = time.perf_counter()
    jobs = _inputs(args.n, args.seed, args.search_share)
    with multiprocessing.get_context("fork").Pool(args.jobs, _init, (settings,)) as pool:
        for done, (i, kind, name, text, outcome) in enumerate(
            pool.imap_unordered(_check, jobs, chunksize=4), 1
        ):
            counts[f"{kind} tried"] += 1
            counts[f"{kind} {outcome.kind}"] += 1
            counts[f"{kind} ran"] += outcome.ran
            if not outcome.ok:
                key = f"{kind} {outcome.kind}: {outcome.detail[:120]}"
                if key not in failures:
                    failures[key] = name
                    print(f"[{i}] {key} (from {name})", file=sys.stderr, flush=True)
                if args.save:
                    args.save.mkdir(parents=True, exist_ok=True)
                    (args.save / f"{i:05d}_{kind}_{outcome.kind}.yaml").write_text(text)
            if done % 500 == 0:
                elapsed = time.perf_counter() - start
                print(f"... {done} inputs, {elapsed:.0f} s", file=sys.stderr, flush=True)

    seconds = time.perf_counter() - start
    print(
        f"{args.n} inputs in {seconds:.0f} s (seed {args.seed}, {args.jobs} jobs, "
        f"ARCHSPEC_MAX_NODES={args.max_nodes}, {args.time_limit:g} s per input)"
    )
    columns = ("tried", 7), ("clean", 7), ("accepted", 9), ("ran", 6), ("internal", 9), ("hangs", 6)
    print(f"{'':8} " + " ".join(f"{name:>{width}}" for name, width in columns))
    for kind in ("spec", "search"):
        tried = counts[f"{kind} tried"]
        internal, hangs = counts[f"{kind} internal"], counts[f"{kind} hang"]
        print(
            f"{kind:8} {tried:>7} {tried - internal - hangs:>7} {counts[f'{kind} accepted']:>9} "
            f"{counts[f'{kind} ran']:>6} {internal:>9} {hangs:>6}"
        )
    print("clean = rejected with an archspec error or accepted; ran = accepted, built and run")
    if failures:
        print(f"\n{len(failures)} distinct failures:")
        for key in failures:
            print(f"  {key}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
