"""A trial (or a compound family member) as a standalone, fully resolved spec that rebuilds
exactly the evaluated model: the stored base spec, scaled by the stored choices."""

from __future__ import annotations

from pathlib import Path

import optuna

from archspec.analysis import analyze
from archspec.errors import ExportError
from archspec.search.results import best_trial, pareto_trials
from archspec.search.space import Candidate
from archspec.search.storage import study_info
from archspec.spec import load_spec
from archspec.spec.dump import dump_spec, write_text_atomic
from archspec.spec.model import Spec


def trial_spec(
    study: optuna.Study, trial: str | int = "best", phi: int | None = None
) -> tuple[Spec, str]:
    """(spec, header) of `trial` ("best" or a number) or, with `phi`, of the compound family
    member phi; checked to have the parameter count that was measured."""
    info = study_info(study)
    if phi is not None:
        attrs, label = _family_member(study, phi)
    else:
        frozen = _pick(study, trial)
        attrs, label = frozen.user_attrs, f"trial {frozen.number}"
    candidate = Candidate.from_attrs(attrs["candidate"])
    base = load_spec(info["base_spec"])
    spec = candidate.spec(base, info["num_classes"])
    params = analyze(spec).params
    if attrs.get("params") is not None and params != attrs["params"]:
        raise ExportError(
            f"{label} rebuilds with {params:,} parameters but was evaluated with "
            f"{attrs['params']:,}; the base spec or the scaling rules changed"
        )
    acc = attrs.get("accuracy")
    scored = f"validation accuracy {acc:.4f}" if acc is not None else "never trained"
    header = (
        f"{spec.name} from study {study.study_name}, {label}: {candidate.describe()}\n"
        f"{scored}; {params:,} params; {attrs.get('flops', 0) / 1e6:.2f} MFLOPs\n"
        f"written by `archspec export`; base: {info['base']}"
    )
    return spec, header


def export_trial(
    study: optuna.Study, path: str | Path, trial: str | int = "best", phi: int | None = None
) -> tuple[Path, Spec]:
    """Write the spec of a trial (see trial_spec) atomically to `path`."""
    spec, header = trial_spec(study, trial, phi)
    return write_text_atomic(path, dump_spec(spec, header=header)), spec


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
    if "candidate" not in frozen.user_attrs:
        raise ExportError(f"trial {number} has no recorded candidate ({frozen.state.name})")
    return frozen


def _family_member(study: optuna.Study, phi: int) -> tuple[dict, str]:
    family = study.user_attrs.get("family")
    if not family:
        raise ExportError(f"study {study.study_name!r} has no compound family (compound mode)")
    for member in family["members"]:
        if member["phi"] == phi:
            return member, f"phi={phi} (from trial {family['trial']})"
    have = ", ".join(str(m["phi"]) for m in family["members"])
    raise ExportError(f"no family member phi={phi}; the family has phi = {have}")
