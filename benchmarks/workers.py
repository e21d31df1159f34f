"""Workers and storages: finished trials per minute with 1 and 2 worker processes (a tiny
digits search, CPU), and the per-trial overhead of archspec's worker loop by storage next to
Optuna's bare `study.optimize` measured the same way, in one process.

    python benchmarks/workers.py                  # SQLite and Journal; PostgreSQL when
    ARCHSPEC_TEST_POSTGRES=postgresql+psycopg2://... python benchmarks/workers.py
    python benchmarks/workers.py --trials 200 --repeats 3 --search-trials 8
    python benchmarks/workers.py --skip-overhead --threads 1   # same threads per worker

The overhead rows time an objective that draws one parameter and returns: what is left is the
storage round trips of one trial. "optuna" is `study.optimize(n_trials=N)` on the plain
storage; "optuna + heartbeat" the same with Optuna's heartbeat; "archspec" is
`archspec.search.workers.run_trials` on the storage `archspec search` opens (heartbeat, retry of
stale trials, the target counted across workers, the surplus check). Medians of `--repeats`
interleaved runs; ratios are against "optuna" on the same storage.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archspec.search.definition.model import Heartbeat  # noqa: E402
from archspec.search.study.heartbeat import open_storage  # noqa: E402
from archspec.search.workers.loop import run_trials  # noqa: E402
from tests.search.harness import fresh_database  # noqa: E402

SEARCH = {
    "study": "bench_workers",
    "base": str(ROOT / "search" / "bases" / "tiny_effnet.yaml"),
    "mode": "free",
    "space": {"width": {"low": 0.5, "high": 1.0}},
    "data": {"dataset": "digits", "limit": 600},
    "training": {"epochs": 1, "batch_size": 64, "lr": 0.005, "precise_bn": 128},
    "latency": {"warmup": 1, "repeats": 5},
    "sampler": "random",
    "evaluation": {"seeds": 0},  # trials only: no re-evaluation after them
    "seed": 0,
}


def objective(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0.0, 1.0)


def per_trial_ms(make_storage: Callable[[], object], run: str, trials: int) -> float:
    storage = make_storage()
    study = optuna.create_study(storage=storage, study_name=f"b{uuid.uuid4().hex[:8]}")
    start = time.perf_counter()
    if run == "archspec":
        run_trials(study, objective, trials, poll=0.05)
    else:
        study.optimize(objective, n_trials=trials)
    return (time.perf_counter() - start) * 1000 / trials


def overhead_table(storages: dict[str, Callable[[str], object]], trials: int, repeats: int) -> None:
    beat = Heartbeat(interval=10, grace_period=60)
    print(f"\nper-trial overhead, {trials} no-op trials, median of {repeats} (ms per trial)")
    print("| storage | optuna | optuna + heartbeat | archspec | archspec / optuna |")
    print("|---|---|---|---|---|")
    for name, url_for in storages.items():
        times: dict[str, list[float]] = {"optuna": [], "heartbeat": [], "archspec": []}
        per_trial_ms(lambda u=url_for(name): open_storage(u, beat), "archspec", 5)  # warm-up
        for _ in range(repeats):  # interleaved, so drift hits all three alike
            url = url_for(name)
            times["optuna"].append(per_trial_ms(lambda u=url: open_storage(u), "optuna", trials))
            url = url_for(name)
            times["heartbeat"].append(
                per_trial_ms(lambda u=url: open_storage(u, beat), "optuna", trials)
            )
            url = url_for(name)
            times["archspec"].append(
                per_trial_ms(lambda u=url: open_storage(u, beat), "archspec", trials)
            )
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"| {name} | {med['optuna']:.1f} | {med['heartbeat']:.1f} | {med['archspec']:.1f} "
            f"| {med['archspec'] / med['optuna']:.2f}x |",
            flush=True,
        )


def throughput_table(
    folder: Path, trials: int, workers: tuple[int, ...], threads: int | None
) -> None:
    definition = folder / "bench_workers.yaml"
    search = {**SEARCH, "trials": trials}
    if threads is not None:  # the same torch threads per worker, whatever the worker count
        search["training"] = {**SEARCH["training"], "threads": threads}
    definition.write_text(yaml.safe_dump(search, sort_keys=False))
    split = f"{threads} thread(s) each" if threads else "CPU threads split between workers"
    finished = trials + 1  # and the base, trial 0
    print(f"\nfinished trials per minute, {finished} trials (base included), digits, {split}")
    print("| workers | wall s (incl. start-up) | finished trials / min | vs 1 worker |")
    print("|---|---|---|---|")
    base = None
    for count in workers:
        storage = str(folder / f"throughput_{count}.log")
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "archspec", "search", str(definition), "--storage", storage,
             "--workers", str(count), "-q"],
            cwd=folder, check=True, stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        wall = time.perf_counter() - start
        rate = finished / wall * 60
        base = base or rate
        print(f"| {count} | {wall:.1f} | {rate:.1f} | {rate / base:.2f}x |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="no-op trials per overhead run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--search-trials", type=int, default=8, help="trials of the real search")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--threads", type=int, help="torch threads per worker (default: split)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    server = os.environ.get("ARCHSPEC_TEST_POSTGRES")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def url_for(kind: str) -> str:
            name = uuid.uuid4().hex[:12]
            if kind == "SQLite":
                return f"sqlite:///{folder / name}.db"
            if kind == "Journal":
                return str(folder / f"{name}.log")
            return fresh_database(server, prefix="b")

        kinds = ["SQLite", "Journal"] + (["PostgreSQL"] if server else [])
        if not server:
            print("(no ARCHSPEC_TEST_POSTGRES: PostgreSQL rows skipped)")
        if not args.skip_overhead:
            overhead_table(dict.fromkeys(kinds, url_for), args.trials, args.repeats)
        if not args.skip_throughput:
            throughput_table(folder, args.search_trials, (1, 2), args.threads)


if __name__ == "__main__":
    main()
