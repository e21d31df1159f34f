"""Optuna search over scaled variants of a base spec: compound (EfficientNet) or free
(independent multipliers and kernels, one or several objectives).

    defn = load_search("search/digits_compound.yaml")
    result = run_search(defn)                    # resumes the study when it exists
    export_trial(result.study, "runs/best.yaml")

Modules, one per concern: `run` (the run loop), `storage` (storage URL, create/resume/load),
`record` (the versioned records a study stores), `samplers` (the sampler and pruner tables),
`trial` (the objective: one trial), `recipe` (build, time, train, score one network),
`family` (compound step 2), `evaluation` (the seeds re-evaluation), `results` (base, best
trial, ranking, Pareto front), `pick` (a trial as a spec), `report` (tables, JSON, plots).
"""

from archspec.search.definition import SearchDef, load_search
from archspec.search.pick import export_trial, trial_spec
from archspec.search.results import best_trial, pareto_trials
from archspec.search.run import SearchResult, run_search
from archspec.search.space import Candidate
from archspec.search.storage import load_study

__all__ = [
    "Candidate",
    "SearchDef",
    "SearchResult",
    "best_trial",
    "export_trial",
    "load_search",
    "load_study",
    "pareto_trials",
    "run_search",
    "trial_spec",
]
