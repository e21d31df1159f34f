"""Training and evaluation of one candidate: the same recipe, seed, split and data order for
every trial, so that accuracies compare; per-epoch statistics, checkpoints and exact resume.

Fairness: the model is initialised right after `torch.manual_seed(seed)`; batches are drawn
from a permutation made by a `torch.Generator` seeded with `seed` (the same order for every
candidate); the split is fixed once per study; epochs, optimizer and schedule are the same.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from archspec.errors import SearchError
from archspec.train.config import Training
from archspec.train.data import Split

CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class EpochStats:
    """One row of a training log (metrics.csv)."""

    epoch: int  # 1-based
    train_loss: float  # mean over the epoch's steps
    val_accuracy: float
    lr: float  # of the first parameter group, after the epoch's last step
    seconds: float  # wall time of the epoch (training, BatchNorm recalibration, validation)


@dataclass
class TrainResult:
    accuracy: float  # validation top-1 after the last epoch
    history: list[float] = field(default_factory=list)  # validation top-1 per epoch
    seconds: float = 0.0
    epochs: list[EpochStats] = field(default_factory=list)
    resumed: int = 0  # epochs restored from a checkpoint


def pick_device(name: str = "auto") -> torch.device:
    """The device a search or a training runs on; one SearchError line when it is absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SearchError("training.device: no CUDA device; use device: auto or cpu")
        if device.index is not None and device.index >= count:
            raise SearchError(
                f"training.device: no CUDA device {device.index} (this machine has {count}); "
                "use device: auto, cuda:0 or cpu"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SearchError("training.device: no MPS device; use device: auto or cpu")
    return device


# NHWC everywhere. On GPU for tensor cores; on CPU because oneDNN's depthwise convolution is far
# faster in NHWC: forward + backward of a 64x64x6x6 depthwise 5x5 measured 2.9 ms NHWC against
# 13 ms NCHW on one core (torch 2.14, AMD EPYC), and regular convolutions were no slower.
MEMORY_FORMAT = torch.channels_last


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; full precision elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """torch's CPU threads set to `count` (None: unchanged) inside the block, then restored."""
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def train(
    model: nn.Module,
    data: Split,
    cfg: Training,
    *,
    device: torch.device,
    seed: int,
    report: Callable[[int, float], None] | None = None,
    progress: bool = False,
    desc: str = "",
    checkpoint: str | Path | None = None,
    on_epoch: Callable[[list[EpochStats]], None] | None = None,
) -> TrainResult:
    """Train `model` (already on `device`) on `data.train_*`, validate after each epoch;
    `report(epoch, accuracy)` may raise to stop early (Optuna pruning); `on_epoch` gets the
    statistics of every epoch so far after each one. With `checkpoint`, the whole training
    state is saved there after every epoch and, when the file exists, training resumes from
    it: an interrupted and resumed run ends with the same weights as an uninterrupted one."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    fmt = MEMORY_FORMAT
    model.to(memory_format=fmt)
    train_x = data.train_x.contiguous(memory_format=fmt)
    n = len(train_x)
    batch = min(cfg.batch_size, n)
    steps_per_epoch = n // batch  # drop the last partial batch: BatchNorm needs > 1 sample
    optimizer = _optimizer(model, cfg)
    schedule = _schedule(optimizer, cfg, steps_per_epoch)
    order = torch.Generator().manual_seed(seed)
    stats: list[EpochStats] = []
    recipe = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    if checkpoint is not None and Path(checkpoint).exists():
        stats = _resume(Path(checkpoint), model, optimizer, schedule, order, recipe, seed)
    resumed = len(stats)
    bar = tqdm(
        total=cfg.epochs * steps_per_epoch,
        initial=len(stats) * steps_per_epoch,
        desc=desc or "train",
        leave=False,
        disable=None if progress else True,  # None: no bar when stderr is not a terminal
        unit="step",
        dynamic_ncols=True,
    )
    for epoch in range(len(stats), cfg.epochs):
        began = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=order).to(device)
        total_loss = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            idx = perm[step * batch : (step + 1) * batch]
            with autocast(device):
                loss = F.cross_entropy(
                    model(train_x[idx]), data.train_y[idx], label_smoothing=cfg.label_smoothing
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.detach().float()
            bar.update(1)
        if cfg.precise_bn:
            recalibrate_batchnorm(model, train_x[: cfg.precise_bn], batch, device)
        accuracy = evaluate(model, data.val_x, data.val_y, device)
        row = EpochStats(
            epoch + 1,
            float(total_loss) / max(1, steps_per_epoch),
            accuracy,
            optimizer.param_groups[0]["lr"],
            time.perf_counter() - began,
        )
        stats.append(row)
        bar.set_postfix(epoch=epoch + 1, loss=f"{row.train_loss:.3f}", val_acc=f"{accuracy:.4f}")
        if checkpoint is not None:
            _save_checkpoint(
                Path(checkpoint), model, optimizer, schedule, order, stats, recipe, seed
            )
        if on_epoch is not None:
            on_epoch(list(stats))
        if report is not None:
            report(epoch, accuracy)
    bar.close()
    history = [row.val_accuracy for row in stats]
    return TrainResult(history[-1], history, time.perf_counter() - start, stats, resumed)


def _save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    order: torch.Generator,
    stats: list[EpochStats],
    recipe: str,
    seed: int,
) -> None:
    """Everything the next epoch depends on, written atomically (plain tensors and containers:
    it loads back with `torch.load(weights_only=True)`)."""
    state = {
        "version": CHECKPOINT_VERSION,
        "recipe": recipe,
        "seed": seed,
        "epochs": [asdict(row) for row in stats],
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "order": order.get_state(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _resume(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    order: torch.Generator,
    recipe: str,
    seed: int,
) -> list[EpochStats]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file, or one that is not a checkpoint
        # torch's message runs over several lines and suggests weights_only=False: not that
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Weights only load failed" in why or "weights_only" in str(exc):
            why = "not a checkpoint written by archspec train"
        raise SearchError(
            f"{path}: not a readable checkpoint ({why}); remove it to start over"
        ) from exc
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise SearchError(f"{path}: not an archspec training checkpoint")
    if state["recipe"] != recipe or state["seed"] != seed:
        raise SearchError(
            f"{path}: written by a run with another recipe or seed; resuming would mix two "
            "trainings (delete it, or write to another folder)"
        )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise SearchError(f"{path}: the checkpoint is of another architecture") from exc
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    order.set_state(state["order"])
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return [EpochStats(**row) for row in state["epochs"]]


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, x: torch.Tensor, batch: int, device: torch.device
) -> None:
    """Precise BatchNorm statistics (pycls' `compute_precise_bn_stats`): running averages
    re-estimated over `x` with the current weights. Short trainings need it: running_var
    starts at 1 and decays by (1 - momentum) per step, far slower than the weights change,
    and eval-mode accuracy stays at chance for the first ~50 steps without it."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    for xs in x.split(batch):
        with autocast(device):
            model(xs)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """Top-1 accuracy, in eval mode, in chunks."""
    model.eval()
    fmt = MEMORY_FORMAT
    correct = 0
    for xs, ys in zip(x.split(1024), y.split(1024), strict=True):
        with autocast(device):
            logits = model(xs.contiguous(memory_format=fmt))
        correct += int((logits.argmax(dim=1) == ys).sum())
    return correct / max(1, len(y))


def _optimizer(model: nn.Module, cfg: Training) -> torch.optim.Optimizer:
    # no weight decay on biases and norm scales (1-D parameters), as in timm and torchvision
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0, foreach=True
        )
    # fused: one kernel for all parameters; the per-parameter loop dominates on small nets
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)


def _schedule(
    optimizer: torch.optim.Optimizer, cfg: Training, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup_epochs`, then cosine decay to zero, stepped per batch."""
    warmup = cfg.warmup_epochs * steps_per_epoch
    total = max(1, cfg.epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
