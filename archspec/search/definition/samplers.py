"""The Optuna samplers and pruners a search definition can name: one table each, name ->
factory and capabilities. The definition is validated against these tables, so adding a
sampler is one entry here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna

from archspec.search.definition.space import grid_space

if TYPE_CHECKING:
    from archspec.search.budget import BandNetwork
    from archspec.search.definition.model import SearchDef


@dataclass(frozen=True)
class SamplerEntry:
    # (definition, seed, the compound band's networks when enumerated)
    factory: Callable[..., optuna.samplers.BaseSampler]
    multi_objective: bool  # optimizes several objectives at once
    needs_steps: bool  # samples a finite grid: every searched range needs a step


@dataclass(frozen=True)
class PrunerEntry:
    factory: Callable[[SearchDef], optuna.pruners.BasePruner]
    prunes: bool  # stops trials from per-epoch reports (Optuna: single objective only)


def _tpe(
    defn: SearchDef, seed: int, networks: list[BandNetwork] | None = None
) -> optuna.samplers.BaseSampler:
    startup = defn.sampler.n_startup_trials
    kwargs = {} if startup is None else {"n_startup_trials": startup}
    return optuna.samplers.TPESampler(seed=seed, **kwargs)


def _nsga2(
    defn: SearchDef, seed: int, networks: list[BandNetwork] | None = None
) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(
        seed=seed, population_size=defn.sampler.population_size or 50
    )


def _random(
    defn: SearchDef, seed: int, networks: list[BandNetwork] | None = None
) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


def _grid(
    defn: SearchDef, seed: int, networks: list[BandNetwork] | None = None
) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GridSampler(grid_space(defn, networks), seed=seed)


def _cmaes(
    defn: SearchDef, seed: int, networks: list[BandNetwork] | None = None
) -> optuna.samplers.BaseSampler:
    return optuna.samplers.CmaEsSampler(
        seed=seed,
        n_startup_trials=defn.sampler.n_startup_trials or 1,
        warn_independent_sampling=False,
    )


SAMPLERS: dict[str, SamplerEntry] = {
    "tpe": SamplerEntry(_tpe, multi_objective=True, needs_steps=False),
    "nsga2": SamplerEntry(_nsga2, multi_objective=True, needs_steps=False),
    "random": SamplerEntry(_random, multi_objective=True, needs_steps=False),
    "grid": SamplerEntry(_grid, multi_objective=True, needs_steps=True),
    "cmaes": SamplerEntry(_cmaes, multi_objective=False, needs_steps=False),
}


def _median(defn: SearchDef) -> optuna.pruners.BasePruner:
    cfg = defn.pruner
    # n_min_trials: judge an epoch only against that many trials that reached it (trials
    # rejected before training also "finish", and must not make one trial the median)
    return optuna.pruners.MedianPruner(
        n_startup_trials=cfg.n_startup_trials,
        n_warmup_steps=cfg.n_warmup_steps,
        n_min_trials=max(1, cfg.n_startup_trials),
    )


def _hyperband(defn: SearchDef) -> optuna.pruners.BasePruner:
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=defn.training.epochs)


def _none(defn: SearchDef) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


PRUNERS: dict[str, PrunerEntry] = {
    "none": PrunerEntry(_none, prunes=False),
    "median": PrunerEntry(_median, prunes=True),
    "hyperband": PrunerEntry(_hyperband, prunes=True),
}


def make_sampler(
    defn: SearchDef, seed: int, networks: list[BandNetwork] | None = None
) -> optuna.samplers.BaseSampler:
    return SAMPLERS[defn.sampler.name].factory(defn, seed, networks)


def make_pruner(defn: SearchDef) -> optuna.pruners.BasePruner:
    return PRUNERS[defn.pruner.name].factory(defn)
