"""Forward latency of every zoo model: the archspec-compiled module against torchvision's.

Both modules hold the same weights and run in one process, alternating (archspec first on even
repeats, torchvision first on odd ones) after a warm-up, so drift in clock speed or cache state
hits both alike. CPU: float32 under torch.inference_mode. CUDA (when present): bf16 autocast and
channels_last as well. The ratio column is the median of archspec/torchvision over pairs of
runs made back to back; the goal is <= 1.02 for every model. On a shared machine, prefer
`--threads 1`: oversubscribed threads make every timing noisy.

    PYTHONPATH=. python benchmarks/zoo_latency.py --models resnet50,googlenet --batches 1,8
    PYTHONPATH=. python benchmarks/zoo_latency.py --quick  # every zoo model, batch 1, few repeats
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

import archspec
from archspec.zoo import list_specs

# torchvision builder arguments that make its model the spec's default (aux heads off)
TORCHVISION_KWARGS = {"googlenet": {"aux_logits": False, "init_weights": False}}
TOLERANCE = 1e-3  # max abs difference of the two outputs in float32 before timing


@dataclass(frozen=True)
class Setting:
    """Where and how a forward runs."""

    device: str
    autocast: torch.dtype | None = None
    channels_last: bool = False

    @property
    def label(self) -> str:
        parts = [self.device]
        if self.autocast is not None:
            parts.append(str(self.autocast).removeprefix("torch."))
        if self.channels_last:
            parts.append("channels_last")
        return " ".join(parts)

    def context(self) -> contextlib.AbstractContextManager:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device, dtype=self.autocast)

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()


@dataclass(frozen=True)
class Row:
    model: str
    batch: int
    setting: str
    archspec_ms: float  # medians
    torchvision_ms: float
    ratio: float  # median of the per-repeat ratios: robust to load that drifts between repeats


def settings() -> list[Setting]:
    out = [Setting("cpu")]
    if torch.cuda.is_available():
        out += [Setting("cuda"), Setting("cuda", torch.bfloat16, channels_last=True)]
    return out


def model_pair(name: str) -> tuple[nn.Module, nn.Module]:
    """(archspec, torchvision) modules of zoo model `name` in eval mode, with equal weights."""
    reference = getattr(torchvision.models, name)(weights=None, **TORCHVISION_KWARGS.get(name, {}))
    model = archspec.create_model(name)
    archspec.load_torchvision_state_dict(model, reference.state_dict())
    return model.eval(), reference.eval()


def check_same_outputs(name: str, model: nn.Module, reference: nn.Module, size: int) -> None:
    x = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        diff = (model(x) - reference(x)).abs().max().item()
    if diff > TOLERANCE:
        raise SystemExit(
            f"{name}: outputs differ by {diff:.2e}; the timings would compare apples to pears"
        )


def _timed(forward: Callable[[], object], setting: Setting) -> float:
    setting.sync()
    start = time.perf_counter()
    forward()
    setting.sync()
    return (time.perf_counter() - start) * 1e3


def time_pair(
    model: nn.Module,
    reference: nn.Module,
    batch: int,
    size: int,
    setting: Setting,
    warmup: int,
    repeats: int,
) -> tuple[float, float, float]:
    """Median milliseconds per forward of model and reference, measured alternately, and the
    median ratio model/reference of runs made back to back."""
    fmt = torch.channels_last if setting.channels_last else torch.contiguous_format
    model = model.to(setting.device, memory_format=fmt)
    reference = reference.to(setting.device, memory_format=fmt)
    x = torch.randn(batch, 3, size, size, device=setting.device).to(memory_format=fmt)
    runs = {"archspec": lambda: model(x), "torchvision": lambda: reference(x)}
    times: dict[str, list[float]] = {key: [] for key in runs}
    with torch.inference_mode(), setting.context():
        for _ in range(warmup):
            for forward in runs.values():
                forward()
        for i in range(repeats):
            order = list(runs) if i % 2 == 0 else list(reversed(runs))
            for key in order:
                times[key].append(_timed(runs[key], setting))
    ours, theirs = times["archspec"], times["torchvision"]
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return statistics.median(ours), statistics.median(theirs), statistics.median(ratios)


def benchmark(
    names: list[str], batches: list[int], size: int, warmup: int, repeats: int
) -> Iterator[Row]:
    for name in names:
        model, reference = model_pair(name)
        check_same_outputs(name, model, reference, size)
        for setting in settings():
            for batch in batches:
                ms = time_pair(model, reference, batch, size, setting, warmup, repeats)
                yield Row(name, batch, setting.label, *ms)
        del model, reference


HEADER = ("model", "batch", "device", "archspec ms", "torchvision ms", "ratio")


def print_row(cells: tuple, widths: tuple[int, ...]) -> None:
    print(
        " | ".join(
            str(c).ljust(w) if i < 3 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated zoo names (default: every zoo model)")
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per module")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per module first")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="batch 1, 5 repeats, 2 warm-ups")
    args = parser.parse_args(argv)

    available = [n for n in list_specs() if hasattr(torchvision.models, n)]
    names = args.models.split(",") if args.models else available
    unknown = sorted(set(names) - set(available))
    if unknown:
        parser.error(f"not a zoo model with a torchvision twin: {', '.join(unknown)}")
    batches = [int(b) for b in args.batches.split(",")]
    warmup, repeats = args.warmup, args.repeats
    if args.quick:
        batches, warmup, repeats = [1], 2, 5
    if args.threads:
        torch.set_num_threads(args.threads)

    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"{torch.get_num_threads()} CPU threads, input {args.size}, "
        f"median of {repeats} alternating runs after {warmup} warm-ups"
    )
    widths = (18, 5, 26, 11, 14, 6)
    print_row(HEADER, widths)
    print_row(tuple("-" * w for w in widths), widths)
    worst = 0.0
    for row in benchmark(names, batches, args.size, warmup, repeats):
        worst = max(worst, row.ratio)
        cells = (
            row.model,
            row.batch,
            row.setting,
            f"{row.archspec_ms:.2f}",
            f"{row.torchvision_ms:.2f}",
            f"{row.ratio:.3f}",
        )
        print_row(cells, widths)
        sys.stdout.flush()
    print(f"worst ratio {worst:.3f} (goal <= 1.02)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
