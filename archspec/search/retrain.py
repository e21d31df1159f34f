"""Retraining a stored trial (or compound family member) to completion: the network the study
evaluated, rebuilt from its stored spec, trained by `archspec train`'s loop."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from archspec.bundle import Provenance
from archspec.train.config import Data, Training
from archspec.train.fit import FitResult, fit
from archspec.train.loop import (
    EpochStats,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import optuna


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
    url: str | None = None,
) -> FitResult:
    """Retrain a trial (or a compound family member) of `study` with the recipe, data and seed
    the study recorded; on CPU it reproduces the trial's accuracy exactly. The run folder
    defaults to runs/<study>/retrain/trial-N (or phi-K), refused when runs/<study>/ belongs to
    another study (`url`: this study's storage)."""
    from archspec.search.resolve import _family_member, _pick, trial_spec
    from archspec.search.study.records import read_study, read_trial

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
        # runs/<study>/ must be this study's (`url`: its storage, default
        # sqlite:///runs/<study>.db), or the retrain would land among another study's files
        from archspec.search.definition.model import default_storage
        from archspec.search.study.runs import owned_folder

        where = url or storage or default_storage(study.study_name)
        folder = owned_folder(study, where) / "retrain" / label
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
