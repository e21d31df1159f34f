"""Random-mutation fuzzing of specs and search definitions against archspec's promises.

Each input is a shipped spec (or search definition) after 1-3 random mutations; the properties
(archspec/testing.py) are the ones the hypothesis tests check: only ArchspecError escapes, each
input finishes within a time bound, an accepted spec builds and its forward pass has the static
shape, scaling it never gives an invalid spec. Prints tried / clean / accepted / internal errors
/ hangs, and one example per distinct internal error.

    nice python benchmarks/fuzz.py --n 10000 [--search-share 0.3] [--seed 0] [--save fuzz-out]
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archspec.testing import check_search, check_spec, mutated, seed_texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="inputs to try")
    parser.add_argument("--search-share", type=float, default=0.3, help="share of search inputs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-run", action="store_true", help="do not build and run accepted specs")
    parser.add_argument("--save", type=Path, help="write each failing input to this folder")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per input")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    seeds = {"spec": seed_texts("spec"), "search": seed_texts("search")}
    counts: collections.Counter[str] = collections.Counter()
    failures: dict[str, tuple[str, str, str]] = {}
    start = time.perf_counter()
    for i in range(args.n):
        kind = "search" if rng.random() < args.search_share else "spec"
        name, seed = rng.choice(seeds[kind])
        text = mutated(seed, rng, kind, steps=rng.randint(1, 3))
        if kind == "spec":
            outcome = check_spec(text, run=not args.no_run, time_limit_s=args.time_limit)
        else:
            outcome = check_search(text, time_limit_s=args.time_limit)
        counts[f"{kind} tried"] += 1
        counts[f"{kind} {outcome.kind}"] += 1
        counts[f"{kind} ran"] += outcome.ran
        if not outcome.ok:
            key = f"{kind} {outcome.kind}: {outcome.detail[:120]}"
            if key not in failures:
                failures[key] = (name, text, outcome.detail)
                print(f"[{i}] {key}", file=sys.stderr, flush=True)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                (args.save / f"{i:05d}_{kind}_{outcome.kind}.yaml").write_text(text)
        if (i + 1) % 500 == 0:
            print(f"... {i + 1} inputs, {time.perf_counter() - start:.0f} s", file=sys.stderr)

    seconds = time.perf_counter() - start
    print(f"{args.n} inputs in {seconds:.0f} s (seed {args.seed})")
    header = (
        f"{'':8} {'tried':>7} {'clean':>7} {'accepted':>9} {'ran':>6} {'internal':>9} {'hangs':>6}"
    )
    print(header)
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
