"""A trial (or a compound family member) as a standalone, fully resolved spec that rebuilds
exactly the evaluated model: the stored base spec, scaled by the stored choices."""

from __future__ import annotations

from pathlib import Path

import optuna

from archspec.analysis import analyze
from archspec.errors import ExportError
from archspec.search.record import (
    FamilyMember,
    read_family,
    read_study,
    read_trial,
    trial_spec_text,
)
from archspec.search.results import best_trial, network_trial, pareto_trials
from archspec.search.space import Candidate
from archspec.search.worker import unfinished
from archspec.spec import load_spec
from archspec.spec.dump import dump_spec, write_text_atomic
from archspec.spec.model import Spec


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
