"""Where studies live: the storage URL, creating or resuming a study (refusing a changed
setup), and loading a stored study for report and export."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from archspec.analysis import analyze
from archspec.errors import Location, SearchError
from archspec.search.definition.model import SearchDef, default_storage
from archspec.search.definition.samplers import make_pruner, make_sampler
from archspec.search.definition.space import reference_spec
from archspec.search.study.claims import worker_index
from archspec.search.study.heartbeat import (
    damaged_journal,
    is_url,
    open_storage,
    storage_fault,
)
from archspec.search.study.records import KEY, StudyRecord, read_study, write_study_record
from archspec.spec.dump import dump_spec
from archspec.train.data import Dataset

if TYPE_CHECKING:
    from archspec.search.budget import BandNetwork

WORKER_SEED_STRIDE = 1_000_003  # sampler seed = seed + trials at start + stride * worker index
# Sections whose change makes new trials incomparable with the stored ones.
FINGERPRINT = (
    "mode",
    "space",
    "compound",
    "data",
    "training",
    "objectives",
    "reward",
    "constraints",
    "latency",
)


def sampler_seed(seed: int, started_at: int, worker: int) -> int:
    """The sampler seed of worker `worker` joining when the study held `started_at` trials:
    a resumed study's sampler is seeded past its trials, so it does not repeat them, and each
    worker draws its own sequence."""
    return seed + started_at + WORKER_SEED_STRIDE * worker


def open_study(
    defn: SearchDef,
    dataset: Dataset,
    *,
    storage: str | None = None,
    seed: int | None = None,
    worker_seed: int | None = None,
    networks: list[BandNetwork] | None = None,
) -> optuna.Study:
    """Create the study, or load it to add trials when it exists (refusing a changed setup).
    The sampler is seeded with `worker_seed` (from the launcher of `--workers N`), else by
    the worker's index among those joining at this point (atomic across machines)."""
    seed = defn.seed if seed is None else seed
    url = storage or defn.storage_url
    info = _study_info(defn, dataset, seed)
    try:
        study = optuna.create_study(
            study_name=defn.study,
            storage=open_storage(url, defn.heartbeat),
            directions=defn.directions,
            load_if_exists=True,
            sampler=make_sampler(defn, seed, networks),
            pruner=make_pruner(defn),
        )
    except (ValueError, ImportError) as exc:
        fault = storage_fault(exc, url)
        if fault is not None:
            raise fault from exc
        raise SearchError(f"storage {url!r}: {exc}", Location(defn.file)) from exc
    except Exception as exc:  # a driver's or Optuna's error on a store it cannot use
        fault = storage_fault(exc, url)
        if fault is None:
            raise
        raise fault from exc
    if KEY not in study.user_attrs:
        if study.trials:
            raise SearchError(
                f"study {defn.study!r} in {url} was not created by archspec search; run "
                "the search with --study-name NAME, or another --storage",
                Location(defn.file),
            )
        with warnings.catch_warnings():  # experimental since Optuna 3.2, still in 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(defn.metrics)
        write_study_record(study, KEY, info)
    else:
        _check_resumable(defn, read_study(study), info, study)
    if worker_seed is None:
        started_at = len(study.trials)
        worker_seed = sampler_seed(seed, started_at, worker_index(study, started_at))
    study.sampler = make_sampler(defn, worker_seed, networks)
    return study


def _study_info(defn: SearchDef, dataset: Dataset, seed: int) -> StudyRecord:
    base = reference_spec(defn.base_spec, dataset.num_classes)
    cost = analyze(base)
    return StudyRecord(
        definition=defn.file,
        mode=defn.mode,
        metrics=defn.metrics,
        directions=defn.directions,
        seed=seed,
        base=defn.base,
        base_spec=dump_spec(base),
        base_params=cost.params,
        base_flops=cost.flops,
        base_size=base.input.hw[0],
        num_classes=dataset.num_classes,
        dataset=dataset.name,
        split=(len(dataset.train_idx), len(dataset.val_idx), len(dataset.test_idx)),
        # where curves are logged does not change what trials measure
        setup=defn.model_dump(mode="json", include=set(FINGERPRINT), exclude={"training": {"log"}}),
    )


def _check_resumable(
    defn: SearchDef, stored: StudyRecord, info: StudyRecord, study: optuna.Study
) -> None:
    changed = [k for k in FINGERPRINT if stored.setup.get(k) != info.setup.get(k)]
    if stored.base_spec != info.base_spec:
        changed.append("base")
    if stored.seed != info.seed:
        changed.append(f"seed ({stored.seed} -> {info.seed})")
    if [d.name.lower() for d in study.directions] != defn.directions:
        changed.append("objective directions")
    if changed:
        sections = {c.split(" ")[0] for c in changed}
        named = [o for o in defn.overrides if o.partition("=")[0].split(".")[0] in sections]
        by = f"; changed by the overrides {' '.join(named)}" if named else ""
        raise SearchError(
            f"study {defn.study!r} exists with a different setup ({', '.join(changed)}{by}); "
            "its trials would not compare with new ones. Run it with --study-name NAME (a new "
            "study), or another --storage.",
            Location(defn.file),
        )


def study_url(study: str, storage: str | None = None) -> tuple[str, str]:
    """(study name, storage URL) of a search definition file or a study name (+ storage)."""
    if study.endswith((".yaml", ".yml")):
        from archspec.search.definition.load import load_search

        defn = load_search(study)
        return defn.study, storage or defn.storage_url
    return study, storage or default_storage(study)


def load_study(study: str, storage: str | None = None) -> optuna.Study:
    """A stored study from a search definition file, or a study name (+ storage URL)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, url = study_url(study, storage)
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
    else:
        path = None if is_url(url) else url  # a journal file
    if path is not None and not Path(path).exists():
        raise SearchError(
            f"no study database {path!r}; run `archspec search` first, or pass --storage"
        )
    try:
        backend = open_storage(url)
        try:
            loaded = optuna.load_study(study_name=name, storage=backend)
        except KeyError as exc:
            names = optuna.get_all_study_names(backend)
            raise SearchError(
                f"no study {name!r} in {url}; it holds: {', '.join(names) or 'none'}"
            ) from exc
        loaded.get_trials(deepcopy=False)  # reads the whole store: damage shows here
    except SearchError:
        raise
    except Exception as exc:  # a driver's or Optuna's error on a store it cannot use
        fault = storage_fault(exc, url)
        if fault is None and not is_url(url):
            fault = damaged_journal(url, exc)
        if fault is None:
            raise
        raise fault from exc
    read_study(loaded)  # refuses a study archspec did not write, or an older record schema
    return loaded
