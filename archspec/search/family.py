"""Compound scaling's step 2 (EfficientNet, Tan & Le 2019, sec. 3.3): from the best trial's
effective alpha, beta, gamma, the member phi is the network nearest flops_ratio^phi times the
base's analysed FLOPs around alpha^phi, beta^phi, gamma^phi (archspec.search.budget.fit_flops),
trained with the study's recipe. Target and achieved FLOPs ratios are stored for every member;
the family is stored on the study and recomputed only when the best trial changes."""

from __future__ import annotations

import time

import optuna

from archspec.errors import ArchspecError
from archspec.search.definition.space import Candidate
from archspec.search.progress import line, lines_wanted
from archspec.search.study.queries import best_trial, network_trial
from archspec.search.study.records import (
    FAMILY_KEY,
    FamilyMember,
    FamilyRecord,
    read_family,
    read_trial,
    spec_hash,
    trial_spec_text,
    write_study_record,
)
from archspec.search.study.runs import family_key
from archspec.search.trial import TrialRunner, effective_record, network
from archspec.spec import load_spec
from archspec.spec.dump import dump_spec


def run_family(study: optuna.Study, runner: TrialRunner) -> FamilyRecord | None:
    best = best_trial(study)
    if best is None:
        return None
    defn = runner.defn
    cfg = defn.compound
    stored = read_family(study)
    if stored and stored.trial == best.number and len(stored.members) == cfg.phi:
        return stored
    first = read_trial(best)
    assert first is not None and first.effective is not None
    eff = first.effective
    kernels = Candidate.from_attrs(first.knobs).kernels
    # the winner's effective multipliers: what the phi = 1 network really has
    unit = Candidate(eff.depth, eff.width, eff.resolution, kernels)
    members = [
        FamilyMember(
            phi=1,
            trial=best.number,
            knobs=unit.to_attrs(),
            target_flops_ratio=cfg.flops_ratio,
            in_band=abs(eff.flops_ratio / cfg.flops_ratio - 1) <= cfg.tolerance,
            spec=trial_spec_text(network_trial(study, best)),
            spec_hash=first.spec_hash,
            effective=eff,
            params=first.params,
            flops=first.flops,
            size=first.size,
            latency_ms=first.latency_ms,
            accuracy=first.accuracy,
        )
    ]
    for phi in range(2, cfg.phi + 1):
        start = time.monotonic()
        members.append(_member(runner, unit, phi))
        if lines_wanted(runner.quiet):
            m = members[-1]
            done = f"accuracy {m.accuracy:.4f}" if m.accuracy is not None else m.error
            line(
                f"family phi={phi}: {m.size or '-'} px, target {m.target_flops_ratio:g}x FLOPs, "
                f"{done}, {time.monotonic() - start:.1f} s"
            )
    record = FamilyRecord(trial=best.number, tolerance=cfg.tolerance, members=members)
    write_study_record(study, FAMILY_KEY, record)
    return record


def _member(runner: TrialRunner, unit: Candidate, phi: int) -> FamilyMember:
    cfg = runner.defn.compound
    target = cfg.flops_ratio**phi
    scaled = unit.power(phi)
    try:
        spec = network(runner.defn, runner.base, scaled, target)
        text = dump_spec(spec)
        eff, metrics = effective_record(runner.base, spec)
        spec = load_spec(text)  # exactly what an export of this member rebuilds
        model = runner.recipe.model(spec, runner.seed)
        metrics.latency_ms = runner.recipe.latency(model, spec)
        result = runner.recipe.train(
            model, spec, runner.seed, desc=f"phi={phi}", keep=family_key(phi)
        )
    except ArchspecError as exc:
        return FamilyMember(
            phi=phi,
            knobs=scaled.to_attrs(),
            target_flops_ratio=target,
            in_band=False,
            error=str(exc).splitlines()[0],
        )
    return FamilyMember(
        phi=phi,
        knobs=scaled.to_attrs(),
        target_flops_ratio=target,
        in_band=abs(eff.flops_ratio / target - 1) <= cfg.tolerance,
        spec=text,
        spec_hash=spec_hash(text),
        effective=eff,
        params=metrics.params,
        flops=metrics.flops,
        size=metrics.size,
        latency_ms=metrics.latency_ms,
        accuracy=result.accuracy,
    )
