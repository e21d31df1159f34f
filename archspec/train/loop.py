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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from archspec.errors import SearchError
from archspec.train.config import Training
from archspec.train.data import Split
from archspec.train.stream import MEMORY_FORMAT, Part, ResidentPart

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
    log_dir: str | Path | None = None,
) -> TrainResult:
    """Train `model` (already on `device`) on `data.train`, validate after each epoch;
    `report(epoch, accuracy)` may raise to stop early (Optuna pruning); `on_epoch` gets the
    statistics of every epoch so far after each one. With `checkpoint`, the whole training
    state is saved there after every epoch and, when the file exists, training resumes from
    it: an interrupted and resumed run ends with the same weights as an uninterrupted one.
    With `cfg.ema`, validation uses the averaged weights and `model` ends holding them.

    Under torch.distributed (`archspec train --nproc N`), each of the N processes trains on
    its 1/N of every global batch of `cfg.batch_size` (the same seeded order), DDP averages
    the gradients, and only rank 0 writes the checkpoint and calls `on_epoch` and `report`."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    model.to(memory_format=MEMORY_FORMAT)
    world, rank = distributed_world()
    n = len(data.train)
    batch = min(cfg.batch_size, n)
    if batch % world:
        raise SearchError(
            f"training.batch_size: {batch} does not split evenly over {world} processes"
        )
    local = batch // world
    steps_per_epoch = n // batch  # drop the last partial batch: BatchNorm needs > 1 sample
    optimizer = _optimizer(model, cfg)
    schedule = _schedule(optimizer, cfg, steps_per_epoch)
    ema = _ema(model, cfg.ema) if cfg.ema is not None else None
    scored = ema.module if ema is not None else model  # the weights validation reads
    stepped = _wrap(model, device, world, cfg.compile)
    order = torch.Generator().manual_seed(seed)
    stats: list[EpochStats] = []
    # what must match to resume a checkpoint (where curves are logged does not change results)
    recipe = json.dumps(cfg.model_dump(mode="json", exclude={"log"}), sort_keys=True)
    board = None
    if log_dir is not None and "tensorboard" in cfg.log and rank == 0:
        from archspec.train.logs import TensorBoardLog

        board = TensorBoardLog(log_dir)
    if checkpoint is not None and Path(checkpoint).exists():
        stats = _resume(Path(checkpoint), model, optimizer, schedule, order, recipe, seed, ema)
    resumed = len(stats)
    bar = tqdm(
        total=cfg.epochs * steps_per_epoch,
        initial=len(stats) * steps_per_epoch,
        desc=desc or "train",
        leave=False,
        disable=None if progress and rank == 0 else True,  # None: off when not a terminal
        unit="step",
        dynamic_ncols=True,
    )
    for epoch in range(len(stats), cfg.epochs):
        began = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=order).to(device)
        steps = [
            perm[step * batch : (step + 1) * batch][rank * local : (rank + 1) * local]
            for step in range(steps_per_epoch)
        ]
        total_loss = torch.zeros((), device=device)
        # the augmentation draws from `order` too: the same numbers in every process
        for index, (x, y) in enumerate(data.train.batches(steps, order, (rank, world))):
            with autocast(device):
                loss = F.cross_entropy(stepped(x), y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            optimizer.step()
            schedule.step()
            if ema is not None:
                ema.update_parameters(model)
            total_loss += loss.detach().float()
            bar.update(1)
            if board is not None:  # a float of the loss waits for the device: only when asked
                step = epoch * steps_per_epoch + index + 1
                board.step(step, float(loss), optimizer.param_groups[0]["lr"])
        if cfg.precise_bn:
            recalibrate_batchnorm(scored, data.train.chunks(batch, cfg.precise_bn), device)
        accuracy = evaluate_part(scored, data.val, device)
        if world > 1:  # the mean training loss over all processes, as one process would log
            torch.distributed.all_reduce(total_loss)
            total_loss /= world
        row = EpochStats(
            epoch + 1,
            float(total_loss) / max(1, steps_per_epoch),
            accuracy,
            optimizer.param_groups[0]["lr"],
            time.perf_counter() - began,
        )
        stats.append(row)
        bar.set_postfix(epoch=epoch + 1, loss=f"{row.train_loss:.3f}", val_acc=f"{accuracy:.4f}")
        if checkpoint is not None and rank == 0:
            _save_checkpoint(
                Path(checkpoint), model, optimizer, schedule, order, stats, recipe, seed, ema
            )
        if board is not None:
            board.epoch(row)
        if rank == 0:
            if on_epoch is not None:
                on_epoch(list(stats))
            if report is not None:
                report(epoch, accuracy)
    bar.close()
    if board is not None:
        board.close()
    if ema is not None:  # from here on (test, re-evaluation, bundles) the averaged weights
        model.load_state_dict(ema.module.state_dict())
    history = [row.val_accuracy for row in stats]
    return TrainResult(history[-1], history, time.perf_counter() - start, stats, resumed)


def distributed_world() -> tuple[int, int]:
    """(world size, rank): (1, 0) unless torch.distributed is initialised."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _wrap(model: nn.Module, device: torch.device, world: int, compile: bool) -> nn.Module:
    """The module the training steps call: DDP across processes, torch.compile when asked."""
    stepped = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
        stepped = DistributedDataParallel(model, device_ids=ids)
    return torch.compile(stepped) if compile else stepped


def _ema(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """Weight EMA as timm's ModelEmaV3: parameters and buffers, with its warm-up (the decay
    ramps up as 1 - (1 + step)^(-2/3) to `decay`), so short trainings are not averaged towards
    their random initial weights."""
    from torch.optim.swa_utils import AveragedModel

    def average(averaged: torch.Tensor, current: torch.Tensor, count: torch.Tensor):
        if not averaged.is_floating_point():  # BatchNorm's num_batches_tracked: the model's
            return current
        beta = min(decay, 1 - (1 + float(count)) ** (-2 / 3))
        return averaged.lerp(current.to(averaged.dtype), 1 - beta)

    return AveragedModel(model, avg_fn=average, use_buffers=True)


def _save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    order: torch.Generator,
    stats: list[EpochStats],
    recipe: str,
    seed: int,
    ema: torch.optim.swa_utils.AveragedModel | None = None,
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
        "ema": ema.state_dict() if ema is not None else {},
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
    ema: torch.optim.swa_utils.AveragedModel | None = None,
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
    _check_checkpoint(state, path)
    if state["recipe"] != recipe or state["seed"] != seed:
        raise SearchError(
            f"{path}: written by a run with another recipe or seed; resuming would mix two "
            "trainings (delete it, or write to another folder)"
        )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise SearchError(f"{path}: the checkpoint is of another architecture") from exc
    try:  # shapes and states that passed the schema can still not fit: one line, not a trace
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        schedule.load_state_dict(state["schedule"])
        order.set_state(state["order"])
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise SearchError(
            f"{path}: the checkpoint's training state does not fit this run ({why}); remove it "
            "to start over"
        ) from None
    return [EpochStats(**row) for row in state["epochs"]]


# the checkpoint's entries and what each must be (read before any of it is used)
CHECKPOINT_SCHEMA: dict[str, type | tuple[type, ...]] = {
    "version": int,
    "recipe": str,
    "seed": int,
    "epochs": list,
    "model": dict,
    "optimizer": dict,
    "schedule": dict,
    "order": torch.Tensor,
    "rng": torch.Tensor,
    "cuda_rng": list,
    "ema": dict,
}


def _check_checkpoint(state: dict, path: Path) -> None:
    """Every entry present with its type, the epoch rows complete and finite, the weights
    tensors: a damaged or foreign checkpoint is one line, never a KeyError mid-resume."""
    import math
    from dataclasses import fields

    def bad(what: str) -> SearchError:
        return SearchError(f"{path}: damaged checkpoint ({what}); remove it to start over")

    for key, kind in CHECKPOINT_SCHEMA.items():
        if key not in state:
            raise bad(f"no {key!r}")
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            raise bad(f"{key!r} is {type(state[key]).__name__}")
    names = {f.name for f in fields(EpochStats)}
    for i, row in enumerate(state["epochs"]):
        if not isinstance(row, dict) or set(row) != names:
            raise bad(f"epoch row {i + 1} is not {sorted(names)}")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in row.values()):
            raise bad(f"epoch row {i + 1} holds a value that is not a finite number")
        if row["epoch"] != i + 1:
            raise bad(f"epoch row {i + 1} says epoch {row['epoch']}")
    for name, value in [*state["model"].items(), *state["ema"].items()]:
        if not isinstance(value, torch.Tensor):
            raise bad(f"weight {str(name)[:80]!r} is not a tensor")
    if state["order"].dtype != torch.uint8 or state["rng"].dtype != torch.uint8:
        raise bad("a random generator state is not a byte tensor")


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, chunks: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> None:
    """Precise BatchNorm statistics (pycls' `compute_precise_bn_stats`): running averages
    re-estimated over the (unaugmented) training images in `chunks` with the current weights.
    Short trainings need it: running_var starts at 1 and decays by (1 - momentum) per step, far
    slower than the weights change, and eval-mode accuracy stays at chance for the first ~50
    steps without it."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    for xs, _ in chunks:
        with autocast(device):
            model(xs)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


@torch.inference_mode()
def evaluate_part(model: nn.Module, part: Part, device: torch.device) -> float:
    """Top-1 accuracy on a part of a split, in eval mode, in chunks of 1024."""
    model.eval()
    correct = 0
    for xs, ys in part.chunks(1024):
        with autocast(device):
            logits = model(xs.contiguous(memory_format=MEMORY_FORMAT))
        correct += int((logits.argmax(dim=1) == ys).sum())
    return correct / max(1, len(part))


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """Top-1 accuracy on model inputs `x` with labels `y`, in eval mode, in chunks."""
    return evaluate_part(model, ResidentPart(x, y), device)


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
    if cfg.optimizer == "rmsprop":
        # TensorFlow's RMSProp (EfficientNet: decay 0.9, epsilon 1e-3) adds epsilon inside the
        # square root; torch adds it outside, so sqrt(1e-3) matches it where it matters
        return torch.optim.RMSprop(
            groups, lr=cfg.lr, alpha=0.9, eps=math.sqrt(1e-3), momentum=cfg.momentum, foreach=True
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
