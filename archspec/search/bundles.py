"""Bundles out of a search. While a study runs, the weights of every network it trains are kept
beside it (`runs/<study>/weights/<key>.safetensors`); at the end the winner, and on request the
top-k trials and the compound family, are written as bundles from the weights they were
evaluated with: `runs/<study>/best/`, `runs/<study>/trial-N/`, `runs/<study>/phi-K/`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from archspec.bundle import Provenance, save_bundle
from archspec.search.study.records import (
    read_evaluation,
    read_family,
    read_study,
    read_trial,
    trial_spec_text,
)
from archspec.search.study.runs import WeightStore, family_key, trial_key
from archspec.spec import load_spec
from archspec.train.data import Dataset
from archspec.train.loop import MEMORY_FORMAT, evaluate

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from archspec.spec.model import Spec

# Trains a network with the study's recipe and seed and keeps its weights in the store under
# the key: for a network whose weights another machine kept (a search over several machines).
Retrain = Callable[["Spec", str], None]


@dataclass(frozen=True)
class Written:
    path: Path | None
    label: str
    note: str = ""  # why nothing was written, or how the weights were come by


def write_bundles(
    study: optuna.Study,
    dataset: Dataset,
    store: WeightStore,
    folder: str | Path,
    *,
    top: int = 0,
    family: bool = False,
    storage: str | None = None,
    retrain: Retrain | None = None,
) -> list[Written]:
    """The winner as `folder/best`; with `top`, the `top` best trials as `folder/trial-N`;
    with `family`, the compound family members phi >= 2 as `folder/phi-K`. A network whose
    weights this machine does not have (another worker trained it) is retrained here with
    `retrain` when given: the same recipe and seed, so on CPU the same weights."""
    folder = Path(folder)
    ranked = ranked_trials(study)
    if not ranked:
        return [Written(None, "best", "no feasible trained trial")]
    jobs: list[tuple[str, FrozenTrial | None, int | None]] = [("best", ranked[0], None)]
    jobs += [(trial_key(t.number), t, None) for t in ranked[:top]]
    if family:
        record = read_family(study)
        for member in record.members if record else []:
            if member.phi >= 2:
                jobs.append((family_key(member.phi), None, member.phi))
    return [
        _write(study, dataset, store, folder / name, t, phi, storage, retrain)
        for name, t, phi in jobs
    ]


def ranked_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Feasible, trained, distinct trials, best first (several objectives: the Pareto front,
    by the first objective)."""
    from archspec.search.study import queries as results

    if len(study.directions) == 1:
        return results.ranked_trials(study)  # distinct networks: each once, its first trial
    sign = -1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1
    return sorted(results.pareto_trials(study), key=lambda t: (sign * t.values[0], t.number))


def _write(
    study: optuna.Study,
    dataset: Dataset,
    store: WeightStore,
    path: Path,
    frozen: FrozenTrial | None,
    phi: int | None,
    storage: str | None,
    retrain: Retrain | None,
) -> Written:
    from archspec.compile import build

    info = read_study(study)
    label = path.name
    if phi is not None:
        member = next(m for m in read_family(study).members if m.phi == phi)
        text, accuracy, key, number = member.spec, member.accuracy, family_key(phi), None
    else:
        from archspec.search.study.queries import network_trial

        record = read_trial(frozen)
        source = network_trial(study, frozen)  # a repeat's network is kept by its first trial
        text, accuracy = trial_spec_text(source), record.accuracy
        key, number = trial_key(source.number), frozen.number
    if text is None or accuracy is None:
        return Written(None, label, f"{key} was not trained by this version of archspec")
    spec = load_spec(text)
    weights, note = store.load(key), ""
    if weights is None:
        worker = frozen.user_attrs.get("worker") if frozen is not None else None
        where = f"by worker {worker}" if worker else "elsewhere"
        if retrain is None:
            return Written(None, label, f"no weights for {key} here (trained {where})")
        retrain(spec, key)
        weights = store.load(key)
        if weights is None:
            return Written(None, label, f"retraining {key} kept no weights")
        note = f"{key} was trained {where}; retrained here with the study's recipe and seed"
    split = dataset.split(spec.input.hw, spec.input.channels, "cpu")
    model = build(spec)
    model.load_state_dict(weights)
    model.to(memory_format=MEMORY_FORMAT)  # as it was validated during the search
    metrics: dict[str, float | int] = {"val_accuracy": accuracy}
    if len(split.test_y):
        import torch

        metrics["test_accuracy"] = evaluate(model, split.test_x, split.test_y, torch.device("cpu"))
    metrics |= _reevaluated(study, number, phi)
    provenance = Provenance(
        source="search",
        study=study.study_name,
        storage=storage,
        trial=number,
        phi=phi,
        seed=info.seed,
        data=_recorded_data(info.setup.get("data"), dataset),
        recipe=info.setup.get("training"),
    )
    save_bundle(
        path,
        spec,
        weights,
        preprocessing=split.preprocessing,
        class_names=dataset.class_names,
        metrics=metrics,
        provenance=provenance,
        overwrite=True,
    )
    return Written(path, label, note)


def _reevaluated(
    study: optuna.Study, number: int | None, phi: int | None
) -> dict[str, float | int]:
    """The seeds re-evaluation of this network, when the study has one: mean and std."""
    import statistics

    evaluation = read_evaluation(study)
    if evaluation is None:
        return {}
    for entry in evaluation.entries:
        if (phi is not None and entry.phi == phi) or (phi is None and entry.trial == number):
            scores = entry.scores
            out: dict[str, float | int] = {"seeds": len(scores.seeds)}
            for name, values in (("val", scores.val), ("test", scores.test)):
                out[f"{name}_accuracy_mean"] = statistics.fmean(values)
                out[f"{name}_accuracy_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
            return out
    return {}


def _recorded_data(section: dict | None, dataset: Dataset) -> dict | None:
    """The study's `data:` section as a bundle records it: the fields that apply, with the
    dataset's real sample and class counts."""
    if section is None:
        return None
    from archspec.train.config import Data

    return Data.from_recorded(section).recorded(len(dataset), dataset.num_classes)
