"""Where studies live: the storage URL, creating or resuming a study (refusing a changed
setup), and loading a stored study for report and export."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna

from archspec.analysis import analyze
from archspec.errors import Location, SearchError
from archspec.search.data import Dataset
from archspec.search.definition import SearchDef, default_storage
from archspec.search.record import KEY, StudyRecord, read_study, write_study_record
from archspec.search.samplers import make_pruner, make_sampler
from archspec.search.space import reference_spec
from archspec.spec.dump import dump_spec

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


def storage_url(url: str) -> str:
    """The URL, with the folder of an SQLite file created."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)
    return url


def open_study(
    defn: SearchDef, dataset: Dataset, *, storage: str | None = None, seed: int | None = None
) -> optuna.Study:
    """Create the study, or load it to add trials when it exists (refusing a changed setup)."""
    seed = defn.seed if seed is None else seed
    url = storage_url(storage or defn.storage_url)
    info = _study_info(defn, dataset, seed)
    try:
        study = optuna.create_study(
            study_name=defn.study,
            storage=url,
            directions=defn.directions,
            load_if_exists=True,
            sampler=make_sampler(defn, seed),
            pruner=make_pruner(defn),
        )
    except (ValueError, ImportError) as exc:
        raise SearchError(f"storage {url!r}: {exc}", Location(defn.file)) from exc
    if KEY not in study.user_attrs:
        if study.trials:
            raise SearchError(
                f"study {defn.study!r} in {url} was not created by archspec search; use "
                "another study name or --storage",
                Location(defn.file),
            )
        with warnings.catch_warnings():  # experimental since Optuna 3.2, still in 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(defn.metrics)
        write_study_record(study, KEY, info)
    else:
        _check_resumable(defn, read_study(study), info, study)
    # A resumed study gets a sampler seeded past its trials, so it does not repeat them.
    study.sampler = make_sampler(defn, seed + len(study.trials))
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
        setup=defn.model_dump(mode="json", include=set(FINGERPRINT)),
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
        raise SearchError(
            f"study {defn.study!r} exists with a different setup ({', '.join(changed)}); its "
            "trials would not compare with new ones. Use another study name or --storage.",
            Location(defn.file),
        )


def load_study(study: str, storage: str | None = None) -> optuna.Study:
    """A stored study from a search definition file, or a study name (+ storage URL)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if study.endswith((".yaml", ".yml")):
        from archspec.search.definition import load_search

        defn = load_search(study)
        name, url = defn.study, storage or defn.storage_url
    else:
        name, url = study, storage or default_storage(study)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        raise SearchError(
            f"no study database {url[len('sqlite:///') :]!r}; run `archspec search` first, "
            "or pass --storage"
        )
    try:
        loaded = optuna.load_study(study_name=name, storage=url)
    except KeyError as exc:
        names = optuna.get_all_study_names(url)
        raise SearchError(
            f"no study {name!r} in {url}; it holds: {', '.join(names) or 'none'}"
        ) from exc
    read_study(loaded)  # refuses a study archspec did not write, or an older record schema
    return loaded
