"""Training a spec to completion in a run folder (`archspec train`) with the search's recipe
objects: a checkpoint after every epoch (an interrupted run resumes exactly), `metrics.csv`, and
a bundle at the end; retraining a study's trial with its recorded recipe; evaluating a bundle.

A run folder holds `bundle/` (the model bundle), `metrics.csv` (one row per epoch) and
`checkpoint.pt` (the last epoch's whole training state).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from archspec.bundle import Bundle, Provenance, is_bundle, save_bundle
from archspec.compile import build
from archspec.errors import SearchError
from archspec.search.data import Dataset, load_dataset
from archspec.search.definition import Data, Training
from archspec.search.train import (
    MEMORY_FORMAT,
    EpochStats,
    TrainResult,
    cpu_threads,
    evaluate,
    pick_device,
    seed_everything,
    train,
)
from archspec.spec.dump import write_text_atomic
from archspec.spec.model import Spec

if TYPE_CHECKING:
    from collections.abc import Callable

    import optuna

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
    there is one; write metrics.csv every epoch and the bundle at the end."""
    folder = Path(folder)
    bundle_dir = folder / BUNDLE_DIR
    checkpoint = folder / CHECKPOINT_FILE
    if is_bundle(bundle_dir) and not overwrite:
        raise SearchError(f"{folder}: already holds a trained bundle; train into another folder")
    if overwrite:
        checkpoint.unlink(missing_ok=True)
        (folder / METRICS_FILE).unlink(missing_ok=True)
    dataset = load_dataset(data, seed)
    spec = with_classes(spec, dataset.num_classes)
    device = pick_device(recipe.device)

    def log(rows: list[EpochStats]) -> None:
        write_metrics(folder / METRICS_FILE, rows)
        if on_epoch is not None:
            on_epoch(rows)

    with cpu_threads(recipe.threads):
        seed_everything(seed)  # the initial weights of a search trial of this architecture
        model = build(spec, device=device)
        split = dataset.split(spec.input.hw, spec.input.channels, device)
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
        )
    metrics = {"val_accuracy": result.accuracy}
    if len(split.test_y):  # the held-out test split, as `archspec evaluate` reads it back
        with cpu_threads(recipe.threads):
            metrics["test_accuracy"] = evaluate(model, split.test_x, split.test_y, device)
    provenance = provenance or Provenance(source="train")
    provenance = provenance.model_copy(
        update={
            "seed": seed,
            "data": data.model_dump(mode="json"),
            "recipe": recipe.model_dump(mode="json"),
        }
    )
    save_bundle(
        bundle_dir,
        spec,
        model.state_dict(),
        preprocessing=split.preprocessing,
        class_names=dataset.class_names,
        metrics=metrics,
        provenance=provenance,
        overwrite=True,
    )
    return FitResult(folder, bundle_dir, result, metrics)


def fit_trial(
    study: optuna.Study,
    folder: str | Path | None = None,
    *,
    trial: str | int = "best",
    phi: int | None = None,
    storage: str | None = None,
    progress: bool = False,
    overwrite: bool = False,
    on_epoch: Callable[[list[EpochStats]], None] | None = None,
) -> FitResult:
    """Retrain a trial (or a compound family member) of `study` with the recipe, data and seed
    the study recorded; on CPU it reproduces the trial's accuracy exactly. The run folder
    defaults to runs/<study>/retrain/trial-N (or phi-K)."""
    from archspec.search.pick import _family_member, _pick, trial_spec
    from archspec.search.record import read_study, read_trial

    info = read_study(study)
    spec, _ = trial_spec(study, trial, phi)
    if phi is not None:
        expected, number = _family_member(study, phi)[0].accuracy, None
    else:
        frozen = _pick(study, trial)
        record = read_trial(frozen)
        expected, number = (record.accuracy if record else None), frozen.number
    setup = info.setup
    if folder is None:
        label = f"phi-{phi}" if phi is not None else f"trial-{number}"
        folder = Path("runs") / study.study_name / "retrain" / label
    provenance = Provenance(
        source="train", study=study.study_name, storage=storage, trial=number, phi=phi
    )
    result = fit(
        spec,
        Data.model_validate(setup["data"]),
        Training.model_validate(setup["training"]),
        folder,
        seed=info.seed,
        provenance=provenance,
        progress=progress,
        overwrite=overwrite,
        on_epoch=on_epoch,
    )
    result.expected = expected
    return result


def with_classes(spec: Spec, num_classes: int) -> Spec:
    """`spec` with its num_classes option defaulting to the dataset's classes, so the bundle's
    spec.yaml rebuilds the trained model; refused when the output cannot have that many."""
    from archspec.analysis import analyze
    from archspec.scale import scale

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


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    images: int
    dataset: str
    split: str  # "test", "validation" or "all"


def evaluate_bundle(bundle: Bundle, data: Data | None = None) -> Evaluation:
    """Top-1 accuracy of a bundle with its recorded preprocessing: on the held-out split of the
    data it was trained on (rebuilt from its recorded data section and seed), or on every image
    of `data`."""
    device = pick_device()
    recorded = bundle.manifest.provenance
    if data is None:
        if recorded.data is None:
            raise SearchError(
                f"{bundle.path}: the bundle records no dataset; name one to evaluate on"
            )
        data = Data.model_validate(recorded.data)
        dataset = load_dataset(data, recorded.seed or 0)
        index, split = _held_out(dataset)
    else:
        dataset = load_dataset(data, recorded.seed or 0)
        index, split = torch.arange(len(dataset)), "all"
    _check_classes(bundle, dataset)
    x = bundle.preprocess(dataset.images[index])
    # on the device and in the memory layout it was trained and validated in: same numbers
    model = bundle.model.to(device=device, memory_format=MEMORY_FORMAT)
    accuracy = evaluate(model, x.to(device), dataset.labels[index].to(device), device)
    return Evaluation(accuracy, len(index), dataset.name, split)


def _held_out(dataset: Dataset) -> tuple[torch.Tensor, str]:
    test = getattr(dataset, "test_idx", None)
    if test is not None and len(test):
        return test, "test"
    return dataset.val_idx, "validation"


def _check_classes(bundle: Bundle, dataset: Dataset) -> None:
    names = bundle.class_names
    if dataset.num_classes > len(names):
        raise SearchError(
            f"{dataset.name} has {dataset.num_classes} classes; the bundle's model has {len(names)}"
        )
    if dataset.class_names != names[: dataset.num_classes]:
        raise SearchError(
            f"{dataset.name}'s classes ({', '.join(dataset.class_names[:5])}...) are not the "
            f"bundle's ({', '.join(names[:5])}...)"
        )
