"""EfficientNet's central claim as a benchmark (Tan & Le 2019, sec. 3 and Fig. 8): at equal FLOPs,
compound scaling beats scaling width, depth or resolution alone.

For each dataset the base spec, data split and training recipe come from a shipped search
definition (search/shapes_compound.yaml, search/digits_compound.yaml). Each method scales the
base to `target` times its FLOPs with `archspec.search.budget.fit_flops` (within +-5%, the same band
the search uses; the achieved ratio is printed):

- compound: the paper's alpha, beta, gamma = 1.2, 1.1, 1.15 raised to phi, with
  phi = log(target) / log(alpha * beta^2 * gamma^2);
- width: beta = sqrt(target); depth: alpha = target; resolution: gamma = sqrt(target).

Every network is trained with the study's recipe (archspec/search/recipe.py) from R seeds and
scored on the held-out test split, never used for any choice here. Prints a markdown table:
test accuracy mean +- std over the seeds.

    PYTHONPATH=. python benchmarks/scaling_claim.py --seeds 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archspec.scaling.measured import Effective, effective  # noqa: E402
from archspec.scaling.rewrite import scale  # noqa: E402
from archspec.search.budget import fit_flops  # noqa: E402
from archspec.search.definition.load import load_search  # noqa: E402
from archspec.search.recipe import Recipe  # noqa: E402
from archspec.train.data import load_dataset  # noqa: E402

DEFINITIONS = {"shapes": "search/shapes_compound.yaml", "digits": "search/digits_compound.yaml"}
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # Tan & Le 2019, sec. 4 (EfficientNet-B0's step 1)


def knobs(method: str, target: float) -> dict[str, float]:
    if method == "compound":
        phi = math.log(target) / math.log(ALPHA * BETA**2 * GAMMA**2)
        return {"depth": ALPHA**phi, "width": BETA**phi, "resolution": GAMMA**phi}
    if method == "width":
        return {"width": math.sqrt(target)}
    if method == "depth":
        return {"depth": target}
    return {"resolution": math.sqrt(target)}


@dataclass
class Row:
    dataset: str
    method: str
    target: float
    eff: Effective
    test: list[float]
    val: list[float]

    def cells(self) -> list[str]:
        mean = statistics.mean(self.test)
        std = statistics.stdev(self.test) if len(self.test) > 1 else 0.0
        e = self.eff
        return [
            self.dataset,
            self.method,
            f"{self.target:g}",
            f"{e.flops_ratio:.2f}",
            f"{e.depth:.2f} / {e.width:.2f} / {e.resolution:.2f}",
            f"{e.size}",
            f"{e.params:,}",
            f"{mean:.4f} ± {std:.4f}",
        ]


def run(dataset: str, targets: list[float], seeds: list[int], methods: list[str]) -> list[Row]:
    defn = load_search(str(ROOT / DEFINITIONS[dataset]))
    data = load_dataset(defn.data, defn.seed)
    recipe = Recipe(defn, data, quiet=True)
    options = {"num_classes": data.num_classes} if "num_classes" in defn.base_spec.options else None
    base = scale(defn.base_spec, options=options)
    jobs = [("base", 1.0, base, effective(base, base))]
    for target in targets:
        for method in methods:
            spec, eff = fit_flops(base, target, **knobs(method, target))
            jobs.append((method, target, spec, eff))
    rows = []
    for method, target, spec, eff in jobs:
        scored = [recipe.score(spec, seed) for seed in seeds]
        row = Row(dataset, method, target, eff, [s.test for s in scored], [s.val for s in scored])
        print("  " + " | ".join(row.cells()), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def verdicts(rows: list[Row]) -> list[str]:
    """Per dataset and target: compound against the best single axis, with the 95% band of the
    difference of means (2 standard errors) as the noise."""
    lines = []
    for row in rows:
        if row.method != "compound":
            continue
        others = [
            r
            for r in rows
            if (r.dataset, r.target) == (row.dataset, row.target) and r.method != "compound"
        ]
        if not others:
            continue
        best = max(others, key=lambda r: statistics.mean(r.test))
        diff = statistics.mean(row.test) - statistics.mean(best.test)
        n = len(row.test)
        noise = (
            2 * math.sqrt((statistics.variance(row.test) + statistics.variance(best.test)) / n)
            if n > 1
            else math.inf
        )
        word = "within noise" if abs(diff) <= noise else ("better" if diff > 0 else "worse")
        lines.append(
            f"{row.dataset} {row.target:g}x: compound {diff:+.4f} against {best.method}-only "
            f"(noise +-{noise:.4f}): {word}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="shapes,digits")
    parser.add_argument("--targets", default="2,4", help="FLOPs ratios over the base")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per network")
    parser.add_argument("--methods", default="compound,width,depth,resolution")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    targets = [float(t) for t in args.targets.split(",")]
    methods = args.methods.split(",")
    start = time.perf_counter()
    rows = []
    for dataset in args.datasets.split(","):
        rows += run(dataset, targets, list(range(args.seeds)), methods)
    header = [
        "dataset",
        "scaling",
        "target",
        "FLOPs ratio",
        "depth / width / resolution",
        "px",
        "params",
        f"test top-1 (mean ± std, {args.seeds} seeds)",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row.cells()) + " |")
    print()
    for line in verdicts(rows):
        print(line)
    print(f"\n{len(rows)} networks x {args.seeds} seeds in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
