"""Training curves people can open: `training.log: [csv, tensorboard]`. csv is metrics.csv (a row
per epoch, written by `archspec train`); tensorboard writes event files through
torch.utils.tensorboard (the optional extra `archspec[tensorboard]`): per step `train/loss` and
`train/lr`, per epoch `val/accuracy`, `train/epoch_loss` and `epoch/seconds`, one run folder
per training (`runs/STUDY/tb/trial-N`, `runs/train/NAME/tb`), for `tensorboard --logdir`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from archspec.errors import SearchError

if TYPE_CHECKING:
    from archspec.train.loop import EpochStats

KINDS = ("csv", "tensorboard")


class TensorBoardLog:
    """Scalars of one training into `folder` (created), flushed at every epoch."""

    def __init__(self, folder: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch's writer needs the tensorboard package
            raise SearchError(
                "training.log: tensorboard needs the tensorboard package: "
                "pip install 'archspec[tensorboard]'"
            ) from exc
        self.folder = Path(folder)
        self.writer = SummaryWriter(log_dir=str(self.folder))

    def step(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def epoch(self, row: EpochStats) -> None:
        self.writer.add_scalar("val/accuracy", row.val_accuracy, row.epoch)
        self.writer.add_scalar("train/epoch_loss", row.train_loss, row.epoch)
        self.writer.add_scalar("epoch/seconds", row.seconds, row.epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def read_scalars(folder: str | Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from the event files in `folder` (tensorboard's own reader)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }
