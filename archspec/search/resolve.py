"""A trial (or a compound family member) as a standalone, fully resolved spec that rebuilds
exactly the evaluated model: the stored base spec, scaled by the stored choices."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from archspec.analysis import analyze
from archspec.errors import ExportError, SearchError
from archspec.search.definition.space import Candidate
from archspec.search.study.queries import best_trial, network_trial, pareto_trials, unfinished
from archspec.search.study.records import (
    FamilyMember,
    read_family,
    read_study,
    read_trial,
    trial_spec_text,
)
from archspec.spec import load_spec
from archspec.spec.dump import dump_spec, write_text_atomic
from archspec.spec.model import Spec

if TYPE_CHECKING:
    from archspec.export.source import Source


def trial_spec(
    study: optuna.Study, trial: str | int = "best", phi: int | None = None
) -> tuple[Spec, str]:
    """(spec, header) of `trial` ("best" or a number) or, with `phi`, of the compound family
    member phi: the network stored with it, checked to have the measured parameter count."""
    info = read_study(study)
    if phi is not None:
        member, label = _family_member(study, phi)
        text, params, flops, acc = member.spec, member.params, member.flops, member.accuracy
        eff, knobs = member.effective, member.knobs
    else:
        frozen = _pick(study, trial)
        record = read_trial(frozen)
        assert record is not None
        label = f"trial {frozen.number}" + (" (the base)" if record.role == "base" else "")
        source = network_trial(study, frozen)
        if source.number != frozen.number:
            label += f" (the same network as trial {source.number})"
        text, params, flops, acc = (
            trial_spec_text(source),
            record.params,
            record.flops,
            record.accuracy,
        )
        eff, knobs = record.effective, record.knobs
    if text is None:
        raise ExportError(f"{label} built no network ({_why(study, trial, phi)})")
    spec = load_spec(text)
    rebuilt = analyze(spec).params
    if params is not None and rebuilt != params:
        raise ExportError(
            f"{label} rebuilds with {rebuilt:,} parameters but was evaluated with "
            f"{params:,}; the stored network is damaged"
        )
    scored = f"validation accuracy {acc:.4f}" if acc is not None else "never trained"
    nominal = Candidate.from_attrs(knobs).describe()
    effective = (
        f"effective depth {eff.depth:.3f}, width {eff.width:.3f}, resolution "
        f"{eff.resolution:.3f}; FLOPs {eff.flops_ratio:.3f}x the base"
        if eff is not None
        else "no analysis"
    )
    header = (
        f"{spec.name} from study {study.study_name}, {label} (sampled {nominal})\n"
        f"{effective}\n"
        f"{scored} (seed {info.seed}); {rebuilt:,} params; {(flops or 0) / 1e6:.2f} MFLOPs\n"
        f"written by archspec; base: {info.base}"
    )
    return spec, header


def _why(study: optuna.Study, trial: str | int, phi: int | None) -> str:
    if phi is not None:
        member, _ = _family_member(study, phi)
        return member.error or "no network"
    record = read_trial(_pick(study, trial))
    return record.reason if record and record.reason else "no network"


def export_trial(
    study: optuna.Study, path: str | Path, trial: str | int = "best", phi: int | None = None
) -> tuple[Path, Spec]:
    """Write the spec of a trial (see trial_spec) atomically to `path`."""
    spec, header = trial_spec(study, trial, phi)
    return write_text_atomic(path, dump_spec(spec, header=header)), spec


def network_number(study: optuna.Study, trial: str | int) -> int:
    """The number of the trial whose spec and weights `trial` ("best" or a number) uses: a
    repeat of an earlier network uses that trial's."""
    return network_trial(study, _pick(study, trial)).number


def _pick(study: optuna.Study, trial: str | int) -> optuna.trial.FrozenTrial:
    if trial == "best":
        if len(study.directions) > 1:
            front = pareto_trials(study)
            if not front:
                raise ExportError(f"study {study.study_name!r} has no feasible trial yet")
            # several objectives: the front's most accurate member (first objective)
            sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
            return max(front, key=lambda t: (sign * t.values[0], -t.number))
        best = best_trial(study)
        if best is None:
            raise ExportError(f"study {study.study_name!r} has no feasible trial yet")
        return best
    number = int(trial)
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise ExportError(
            f"study {study.study_name!r} has trials 0..{len(trials) - 1}; got {number}"
        )
    frozen = trials[number]
    note = unfinished(study).get(number)
    if note is not None:  # nothing trained: its numbers would read as a result
        raise ExportError(f"trial {number} never finished ({note}); export a finished trial")
    if read_trial(frozen) is None:
        raise ExportError(f"trial {number} has no archspec record ({frozen.state.name})")
    return frozen


def _family_member(study: optuna.Study, phi: int) -> tuple[FamilyMember, str]:
    family = read_family(study)
    if family is None:
        raise ExportError(f"study {study.study_name!r} has no compound family (compound mode)")
    for member in family.members:
        if member.phi == phi:
            return member, f"phi={phi} (from trial {family.trial})"
    have = ", ".join(str(m.phi) for m in family.members)
    raise ExportError(f"no family member phi={phi}; the family has phi = {have}")


def study_source(
    name: str,
    trial: str | int,
    phi: int | None,
    storage: str | None,
    weights: str | Path | None,
    random_weights: bool = False,
) -> Source:
    """A study's best trial, trial number `trial` or family member `phi` as an export
    source, with `weights` when given, else the bundle or weights the search kept for that
    network in runs/<study>/ (checked to be this study's folder), else refused: random
    weights only when `random_weights` asks for them."""
    from archspec.export.source import from_bundle, from_spec
    from archspec.search.study.runs import owned_folder
    from archspec.search.study.storage import load_study, study_url

    try:
        study = load_study(name, storage)
    except SearchError as exc:
        if name.endswith((".yaml", ".yml")) or storage is not None:
            raise
        raise ExportError(
            f"{name!r} is not a bundle, a spec file, a zoo model or a search definition, "
            f"and as a study name: {exc.message}"
        ) from exc
    spec, header = trial_spec(study, trial, phi)
    if weights is not None:
        return from_spec(spec, header, weights)
    if random_weights:
        source = from_spec(spec, header)
        source.weights += ", as --random-weights asked"
        return source
    try:
        folder = owned_folder(study, study_url(name, storage)[1])
    except SearchError as exc:
        raise ExportError(f"{exc.message}; or pass --random-weights") from exc
    asked = trial
    if phi is None and trial != "best":
        trial = network_number(study, trial)  # a repeat's weights are its first trial's
    bundle, stored = _trained(folder, spec, trial, phi)
    if bundle is None and stored is None and phi is None and trial == "best":
        # no best bundle (moved, or not written yet): the weights kept for the best trial
        bundle, stored = _trained(folder, spec, network_number(study, "best"), None)
    if bundle is not None:
        source = from_bundle(bundle)
        source.header = header
        return source
    if stored is not None:
        return from_spec(spec, header, stored)
    what = f"phi={phi}" if phi is not None else f"trial {asked}"
    retrain = f"--phi {phi}" if phi is not None else f"--trial {asked}"
    raise ExportError(
        f"{what} of study {study.study_name!r} has no kept weights in {folder}/ "
        f"({_untrained(study, trial, phi)}); retrain it with `archspec train "
        f"{name} {retrain}`, or pass --random-weights to export it untrained"
    )


def _untrained(study: optuna.Study, trial: str | int, phi: int | None) -> str:
    if phi is not None:
        member, _ = _family_member(study, phi)
        return "never trained" if member.accuracy is None else "its weights file is missing"
    record = read_trial(_pick(study, trial))
    if record is not None and record.status != "trained":
        return f"{record.status}: {record.reason}" if record.reason else record.status
    return "its weights file is missing"


def _trained(
    folder: Path, spec: Spec, trial: str | int, phi: int | None
) -> tuple[Path | None, Path | None]:
    """(the bundle, else the weights file) the search kept for this trial or family member
    (runs/STUDY/best, trial-N, phi-K; runs/STUDY/weights/KEY.safetensors), if any; a bundle
    counts only when it holds this very network."""
    from archspec.bundle import SPEC_FILE, is_bundle
    from archspec.search.study.runs import WeightStore, family_key, trial_key
    from archspec.spec import load_spec
    from archspec.spec.dump import dump_spec

    if phi is not None:
        key: str | None = family_key(phi)
    else:
        key = "best" if trial == "best" else trial_key(int(trial))
    bundle = folder / key
    if is_bundle(bundle) and dump_spec(load_spec(bundle / SPEC_FILE)) == dump_spec(spec):
        return bundle, None
    stored = WeightStore(folder / "weights").path(key)
    return None, (stored if key != "best" and stored.is_file() else None)
