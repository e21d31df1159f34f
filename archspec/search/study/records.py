"""What a study stores, as versioned pydantic records: the study's setup (a study user
attribute), each trial's outcome (a trial user attribute), the compound family and the seeds
re-evaluation (study user attributes). Report, export and resume read these records only;
a study written by another tool or an older archspec is refused with a clear error.

Optuna conventions kept on the side: the objective values and `trial.set_constraint` (what
the samplers read), `reason` (a plain user attribute, so optuna-dashboard's trial table says
why a candidate was not trained) and the network's YAML under its own key (so the dashboard's
1 KB attribute preview stays readable).
"""

from __future__ import annotations

import hashlib
import math
import statistics
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial
from pydantic import BaseModel, ConfigDict, ValidationError

from archspec.errors import SearchError
from archspec.scaling.measured import Effective

# 2: records stored as JSON text (optuna-dashboard cuts a dict attribute at 1,024 characters),
# the built network's values as named attributes, repeats of a network are not trials
SCHEMA_VERSION = 2
KEY = "archspec"  # the study record (study attr) and each trial record (trial attr)
SPEC_KEY = "archspec_spec"  # trial attr: the trained network as resolved YAML
FAMILY_KEY = "archspec_family"  # study attr
EVALUATION_KEY = "archspec_evaluation"  # study attr
REASON_KEY = "reason"  # trial attr, for the dashboard
ROLE_KEY = "archspec_role"  # trial attr set when the base trial is enqueued
# trial attr: the trial whose network this proposal rebuilt; such a proposal is told to the
# sampler (PRUNED, no value) but is not a trial of the study: it counts towards nothing
REPEAT_KEY = "archspec_repeat_of"

Status = Literal["trained", "rejected", "pruned", "duplicate", "failed"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudyRecord(_Record):
    """The setup of a study: what every trial was trained and judged with."""

    schema_version: Literal[2] = SCHEMA_VERSION
    definition: str
    mode: Literal["compound", "free"]
    metrics: list[str]
    directions: list[str]
    seed: int
    base: str
    base_spec: str  # the base as YAML, num_classes set to the dataset's
    base_params: int
    base_flops: int
    base_size: int
    num_classes: int
    dataset: str
    split: tuple[int, int, int]  # train, validation, test images
    setup: dict[str, Any]  # the definition's sections that make trials comparable


class TrialRecord(_Record):
    """One trial's outcome. `knobs` are the sampled (nominal) multipliers; `effective` and the
    costs describe the network that was built from them."""

    schema_version: Literal[2] = SCHEMA_VERSION
    role: Literal["base", "candidate"] = "candidate"
    status: Status
    reason: str | None = None  # why it was not trained (rejected, failed, pruned, duplicate)
    knobs: dict[str, Any]
    spec_hash: str | None = None  # sha256 of the network's resolved YAML
    effective: Effective | None = None
    params: int | None = None
    flops: int | None = None
    size: int | None = None
    latency_ms: float | None = None
    accuracy: float | None = None  # validation top-1 after the last epoch
    constraints: dict[str, float] = {}
    same_as: int | None = None  # the earlier trial that built the same network
    history: list[float] = []
    train_s: float | None = None

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.constraints.values())

    @property
    def trained(self) -> bool:
        return self.accuracy is not None


class FamilyMember(_Record):
    phi: int
    trial: int | None = None  # phi = 1 is the best trial itself
    knobs: dict[str, Any]
    target_flops_ratio: float
    in_band: bool
    spec: str | None = None  # the network as resolved YAML
    spec_hash: str | None = None
    effective: Effective | None = None
    params: int | None = None
    flops: int | None = None
    size: int | None = None
    latency_ms: float | None = None
    accuracy: float | None = None
    error: str | None = None


class FamilyRecord(_Record):
    schema_version: Literal[2] = SCHEMA_VERSION
    trial: int  # the best trial the family is scaled from
    tolerance: float
    members: list[FamilyMember]


MIN_SEEDS = 3  # fewer seeds give no usable noise estimate: nothing is judged on them


class Scores(_Record):
    """Accuracies of one network retrained with several seeds."""

    seeds: list[int]
    val: list[float]
    test: list[float]

    @staticmethod
    def interval(values: list[float]) -> tuple[float, float]:
        """The 95% interval of the mean, within the [0, 1] an accuracy can take (with few
        seeds the t interval runs past it); unbounded with one seed."""
        mean, _, half = Scores.summary(values)
        return max(0.0, mean - half), min(1.0, mean + half)

    @staticmethod
    def summary(values: list[float]) -> tuple[float, float, float]:
        """(mean, sample std, half-width of the 95% Student-t interval of the mean)."""
        mean = statistics.fmean(values)
        if len(values) < 2:
            return mean, 0.0, math.inf
        from scipy.stats import t

        std = statistics.stdev(values)
        return mean, std, float(t.ppf(0.975, len(values) - 1)) * std / math.sqrt(len(values))

    @staticmethod
    def unjudged(values: list[float]) -> str | None:
        """Why these values carry no noise estimate (None when they do): fewer than MIN_SEEDS
        seeds, or seeds that all agree (a zero spread measures nothing)."""
        if len(values) < MIN_SEEDS:
            return f"{len(values)} seed{'s' * (len(values) != 1)}: too few seeds to judge"
        if statistics.pstdev(values) == 0:
            return f"all {len(values)} seeds agree exactly: a zero spread, no noise estimate"
        return None


class Evaluated(_Record):
    label: str  # "base", "rank 1", "phi=2", ...
    trial: int | None = None
    phi: int | None = None
    params: int
    flops: int
    spec_hash: str
    scores: Scores


class EvaluationRecord(_Record):
    schema_version: Literal[2] = SCHEMA_VERSION
    seeds: list[int]
    winner: int  # the selected trial
    entries: list[Evaluated]
    verdict: str


def spec_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- reading and writing ---------------------------------------------------------------------


def _parse(model: type[_Record], data: Any, what: str) -> Any:
    if isinstance(data, str):
        import json

        try:
            data = json.loads(data)
        except ValueError as exc:
            raise SearchError(f"{what}: unreadable archspec record (not JSON)") from exc
    if isinstance(data, dict) and data.get("schema_version") != SCHEMA_VERSION:
        raise SearchError(
            f"{what} was written by a different archspec (record schema "
            f"{data.get('schema_version', 0)}; this version reads {SCHEMA_VERSION}); run the "
            "search again with --study-name NAME (a new study), or with the archspec that wrote it"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SearchError(f"{what}: unreadable archspec record ({exc.errors()[0]['msg']})") from exc


def read_study(study: optuna.Study) -> StudyRecord:
    data = study.user_attrs.get(KEY)
    if data is None:
        raise SearchError(f"study {study.study_name!r} was not created by archspec search")
    return _parse(StudyRecord, data, f"study {study.study_name!r}")


def read_trial(trial: FrozenTrial) -> TrialRecord | None:
    """The trial's record; None for a trial that never got one (running, or it crashed)."""
    data = trial.user_attrs.get(KEY)
    return None if data is None else _parse(TrialRecord, data, f"trial {trial.number}")


def trial_spec_text(trial: FrozenTrial) -> str | None:
    return trial.user_attrs.get(SPEC_KEY)


def write_trial(trial: optuna.Trial, record: TrialRecord, spec: str | None = None) -> None:
    trial.set_user_attr(KEY, record.model_dump_json())
    for key, value in named_values(record).items():
        trial.set_user_attr(key, value)
    if spec is not None:
        trial.set_user_attr(SPEC_KEY, spec)
    if record.reason is not None:
        trial.set_user_attr(REASON_KEY, record.reason)


CONSTRAINT_PREFIX = "constraint_"  # trial attrs: each constraint value under its name


def named_values(record: TrialRecord) -> dict[str, Any]:
    """The built network's values as typed attributes, one per value, so that optuna-dashboard
    can show, sort and filter them (what `archspec report` shows): the effective multipliers,
    input size, kernels, params, FLOPs, latency, accuracy, and each constraint by name.
    Values a trial does not have are left out (a column of numbers stays sortable)."""
    values: dict[str, Any] = {"status": "base" if record.role == "base" else record.status}
    eff = record.effective
    if eff is not None:
        values |= {
            "depth": round(eff.depth, 4),
            "width": round(eff.width, 4),
            "resolution": round(eff.resolution, 4),
            "flops_ratio": round(eff.flops_ratio, 4),
        }
    for key, value in (
        ("px", record.size),
        ("params", record.params),
        ("flops", record.flops),
        ("latency_ms", record.latency_ms),
        ("accuracy", record.accuracy),
        ("train_s", record.train_s),
    ):
        if value is not None:
            values[key] = value
    for stage, k in record.knobs.get("kernels", {}).items():
        values[f"kernel_{stage}"] = int(k)
    for key, value in record.constraints.items():
        values[CONSTRAINT_PREFIX + key] = value
    return values


def read_family(study: optuna.Study) -> FamilyRecord | None:
    data = study.user_attrs.get(FAMILY_KEY)
    return None if data is None else _parse(FamilyRecord, data, "the compound family")


def read_evaluation(study: optuna.Study) -> EvaluationRecord | None:
    data = study.user_attrs.get(EVALUATION_KEY)
    return None if data is None else _parse(EvaluationRecord, data, "the seeds re-evaluation")


def write_study_record(study: optuna.Study, key: str, record: _Record) -> None:
    study.set_user_attr(key, record.model_dump_json())
    if isinstance(record, EvaluationRecord):
        for attr, value in evaluation_fields(record).items():
            study.set_user_attr(attr, value)


def evaluation_fields(record: EvaluationRecord) -> dict[str, Any]:
    """The seeds re-evaluation as short study attributes, one per network, and the verdict:
    what optuna-dashboard shows whole (it cuts a dict attribute at 1,024 characters)."""
    fields: dict[str, Any] = {"verdict": record.verdict}
    for e in record.entries:
        name = "eval_" + e.label.replace(" ", "_").replace("=", "_")
        row: dict[str, Any] = {"trial": e.trial, "phi": e.phi, "params": e.params}
        for split in ("val", "test"):
            mean, std, _ = Scores.summary(getattr(e.scores, split))
            row[f"{split}_mean"], row[f"{split}_std"] = round(mean, 4), round(std, 4)
        row["seeds"] = len(e.scores.seeds)
        fields[name] = {k: v for k, v in row.items() if v is not None}
    return fields
