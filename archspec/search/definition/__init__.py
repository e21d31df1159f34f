"""Search definitions (`search/*.yaml`): the pydantic model (`model`), reading one with located
errors (`load`), the space a trial samples (`space`), the sampler and pruner tables
(`samplers`) and what a trial is judged by (`objectives`)."""

from archspec.search.definition.load import definition_path, load_search
from archspec.search.definition.model import SearchDef, default_storage
from archspec.search.definition.samplers import PRUNERS, SAMPLERS, make_pruner, make_sampler
from archspec.search.definition.space import Candidate, suggest

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "Candidate",
    "SearchDef",
    "default_storage",
    "definition_path",
    "load_search",
    "make_pruner",
    "make_sampler",
    "suggest",
]
