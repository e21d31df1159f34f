"""What a study stores and where: storages with a heartbeat (`heartbeat`), creating, resuming and
loading a study (`storage`), atomic claims (`claims`), the versioned records (`records`),
queries over stored trials (`queries`) and the `runs/<study>/` folder (`runs`). The only
package that touches Optuna's private API (listed in `OPTUNA_PRIVATE`)."""

from archspec.search.study.heartbeat import open_storage
from archspec.search.study.queries import base_trial, best_trial, pareto_trials, ranked_trials
from archspec.search.study.records import StudyRecord, TrialRecord, read_study, read_trial
from archspec.search.study.runs import WeightStore, study_folder
from archspec.search.study.storage import load_study, open_study

__all__ = [
    "StudyRecord",
    "TrialRecord",
    "WeightStore",
    "base_trial",
    "best_trial",
    "load_study",
    "open_storage",
    "open_study",
    "pareto_trials",
    "ranked_trials",
    "read_study",
    "read_trial",
    "study_folder",
]
