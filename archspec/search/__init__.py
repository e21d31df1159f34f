"""Optuna search over scaled variants of a base spec: compound (EfficientNet) or free
(independent multipliers and kernels, one or several objectives).

    defn = load_search("search/digits_compound.yaml")
    result = run_search(defn)                    # resumes the study when it exists
    export_trial(result.study, "runs/best.yaml")

Modules: `run` (the run loop), `trial` (the objective: one trial), `recipe` (build, time,
train, score one network), `latency`, `budget` (the network nearest a FLOPs target), `family`
(compound step 2), `evaluation` (the seeds re-evaluation), `bundles` (the winners' bundles),
`resolve` (a stored trial as a spec), `retrain` (a stored trial trained to completion),
`report` (tables, JSON, plots). Packages: `definition/` (the YAML model, space, sampler and
pruner tables, objectives), `study/` (storages, records, queries, `runs/<study>/`),
`workers/` (worker processes, signals, the re-evaluation pool).
"""

from archspec.search.definition.load import load_search
from archspec.search.definition.model import SearchDef
from archspec.search.definition.space import Candidate
from archspec.search.resolve import export_trial, trial_spec
from archspec.search.run import SearchResult, run_search
from archspec.search.study.queries import best_trial, pareto_trials
from archspec.search.study.storage import load_study

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
