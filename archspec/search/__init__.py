"""Optuna search over scaled variants of a base spec: compound (EfficientNet) or free
(independent multipliers and kernels, one or several objectives).

    defn = load_search("search/digits_compound.yaml")
    result = run_search(defn)                    # resumes the study when it exists
    export_trial(result.study, "runs/best.yaml")
"""

from archspec.search.definition import SearchDef, load_search
from archspec.search.export import export_trial, trial_spec
from archspec.search.space import Candidate
from archspec.search.study import (
    SearchResult,
    best_trial,
    load_study,
    pareto_trials,
    run_search,
)

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
