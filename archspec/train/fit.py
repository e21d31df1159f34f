"""Training a spec to completion in a run folder (`archspec train`) with the search's recipe
objects: a checkpoint after every epoch (an interrupted run resumes exactly), `metrics.csv`, and
a bundle at the end; retraining a study's trial with its recorded recipe; evaluating a bundle.

A run folder holds `bundle/` (the model bundle), `metrics.csv` (one row per epoch) and
`checkpoint.pt` (the last epoch's whole training state).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from archspec.bundle import Provenance, is_bundle, save_bundle
from archspec.compile import build
from archspec.errors import SearchError
from archspec.spec.dump import write_text_atomic
from archspec.spec.model import Spec
from archspec.train.config import Data, Training
from archspec.train.data import load_dataset
from archspec.train.loop import (
    EpochStats,
    TrainResult,
    cpu_threads,
    distributed_world,
    evaluate_part,
    pick_device,
    seed_everything,
    train,
)

if TYPE_CHECKING:
    from collections.abc import Callable


BUNDLE_DIR = "bundle"
METRICS_FILE = "metrics.csv"
CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class FitResult:
    folder: Path
    bundle: Path
    train: TrainResult
    metrics: dict[str, float]  # what the bundle's manifest records
    expected: float | None = None  # a retrained trial: the accuracy the study recorded


def fit(
    spec: Spec,
    data: Data,
    recipe: Training,
    folder: str | Path,
    *,
    seed: int = 0,
    provenance: Provenance | None = None,
    progress: bool = False,
    overwrite: bool = False,
    on_epoch: Callable[[list[EpochStats]], None] | None = None,
) -> FitResult:
    """Train `spec` on `data` with `recipe` and `seed` exactly as a search trial is trained
    (same initialisation, split, batch order), resuming from the folder's checkpoint when
    there is one; write metrics.csv every epoch and the bundle at the end. Under
    torch.distributed (`archspec train --nproc N`, torchrun) every process trains its share of
    each batch and rank 0 alone writes metrics.csv, the checkpoint and the bundle."""
    folder = Path(folder)
    bundle_dir = folder / BUNDLE_DIR
    checkpoint = folder / CHECKPOINT_FILE
    world, rank = distributed_world()
    if is_bundle(bundle_dir) and not overwrite:
        raise SearchError(f"{folder}: already holds a trained bundle; train into another folder")
    if overwrite and rank == 0:
        checkpoint.unlink(missing_ok=True)
        (folder / METRICS_FILE).unlink(missing_ok=True)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # nobody reads a checkpoint rank 0 is removing
        if rank != 0:
            dist.barrier()  # rank 0 decodes the dataset into the image cache first
    # image folders and torchvision datasets: cached at the largest input training reads
    data = data.at_load_size(math.ceil(max(spec.input.hw) * (recipe.test_size_ratio or 1.0)))
    dataset = load_dataset(data, seed)
    if world > 1 and rank == 0:
        dist.barrier()
    spec = with_classes(spec, dataset.num_classes)
    device = pick_device(recipe.device)
    if world > 1 and device.type == "cuda":
        import os

        import torch

        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))

    def log(rows: list[EpochStats]) -> None:
        write_metrics(folder / METRICS_FILE, rows)
        if on_epoch is not None:
            on_epoch(rows)

    with cpu_threads(recipe.threads):
        seed_everything(seed)  # the initial weights of a search trial of this architecture
        model = build(spec, device=device)
        if world > 1 and device.type == "cuda":  # BatchNorm over the global batch (CUDA only)
            import torch

            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        tested = spec  # the network at the size validation and test read (FixRes)
        if recipe.test_size_ratio is not None:
            from archspec.scaling.rewrite import scale

            tested = scale(spec, resolution=recipe.test_size_ratio)
        split = dataset.split(
            spec.input.hw, spec.input.channels, device, recipe, eval_size=tested.input.hw
        )
        result = train(
            model,
            split,
            recipe,
            device=device,
            seed=seed,
            progress=progress,
            desc=spec.name,
            checkpoint=checkpoint,
            on_epoch=log,
            log_dir=Path(folder) / "tb",
        )
    metrics = {"val_accuracy": result.accuracy}
    if len(split.test):  # the held-out test split, as `archspec evaluate` reads it back
        with cpu_threads(recipe.threads):
            metrics["test_accuracy"] = evaluate_part(model, split.test, device)
    if rank != 0:
        return FitResult(folder, bundle_dir, result, metrics)
    provenance = provenance or Provenance(source="train")
    provenance = provenance.model_copy(
        update={
            "seed": seed,
            "data": data.recorded(len(dataset), dataset.num_classes),
            "recipe": recipe.model_dump(mode="json"),
        }
    )
    save_bundle(
        bundle_dir,
        tested,
        model.state_dict(),
        preprocessing=split.preprocessing,
        class_names=dataset.class_names,
        metrics=metrics,
        provenance=provenance,
        overwrite=True,
    )
    return FitResult(folder, bundle_dir, result, metrics)


def with_classes(spec: Spec, num_classes: int) -> Spec:
    """`spec` with its num_classes option defaulting to the dataset's classes, so the bundle's
    spec.yaml rebuilds the trained model; refused when the output cannot have that many."""
    from archspec.analysis import analyze
    from archspec.scaling.rewrite import scale

    if "num_classes" in spec.options:
        spec = scale(spec, options={"num_classes": num_classes})
    cost = analyze(spec)
    shape = cost.output_shapes[0]
    if shape.layout != "C" or shape.dims[0] != num_classes:
        raise SearchError(
            f"{spec.name}: its output is {shape.layout} {list(shape.dims)}; the dataset has "
            f"{num_classes} classes (give the spec a num_classes option)"
        )
    return spec


def write_metrics(path: Path, rows: list[EpochStats]) -> None:
    """metrics.csv, rewritten whole (atomically) after each epoch."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[f.name for f in fields(EpochStats)])
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    write_text_atomic(path, text.getvalue())
