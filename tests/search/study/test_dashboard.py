"""A finished study as optuna-dashboard shows it, read through the dashboard's own WSGI app (no
browser): the built network's values as named, sortable attributes that agree with `archspec
report`, the constraints by name, the base trial's value and curve, nothing cut at the
dashboard's 1,024-character limit."""

import json
import numbers
from io import BytesIO
from wsgiref.util import setup_testing_defaults

import pytest

from archspec.search import load_search, recipe, run_search
from archspec.search.report import report_json
from archspec.search.study.records import read_evaluation, read_trial
from tests.search.stubs import COMPOUND, candidates, stub_train

dashboard = pytest.importorskip("optuna_dashboard")
from optuna_dashboard._serializer import MAX_ATTR_LENGTH  # noqa: E402

NAMED = ("depth", "width", "resolution", "px", "flops_ratio", "params", "flops", "latency_ms",
         "accuracy")  # fmt: skip


def get(app, path):
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": BytesIO()}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
    assert status[0].startswith("200"), (path, status, body[:300])
    return json.loads(body)


def shown(value):
    """What the dashboard would show for a value, uncut."""
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, numbers.Real) else json.dumps(value)


@pytest.mark.slow
def test_the_dashboard_shows_the_built_networks_as_archspec_report_does(write_def, monkeypatch):
    monkeypatch.setattr(recipe, "train", stub_train([], lambda n: 0.5 + 0.01 * n))
    defn = load_search(write_def("dash", **COMPOUND, evaluation={"seeds": 3, "top_k": 2,
                                                                "processes": 1}))  # fmt: skip
    study = run_search(defn, quiet=True).study
    app = dashboard.wsgi(study._storage)
    (listed,) = [
        s for s in get(app, "/api/studies")["study_summaries"] if s["study_name"] == "dash"
    ]
    detail = get(app, f"/api/studies/{listed['study_id']}")
    trials = {t["number"]: t for t in detail["trials"]}
    doc = report_json(study)
    attrs = {n: {a["key"]: a["value"] for a in t["user_attrs"]} for n, t in trials.items()}

    # the base: its value and its curve
    base = trials[0]
    assert base["state"] == "Pruned"
    assert base["values"] == [doc["base"]["accuracy"]]
    assert [v["value"] for v in base["intermediate_values"]] == read_trial(study.trials[0]).history

    # the built network's values, one attribute each, sortable, as the report has them
    sortable = {a["key"]: a["sortable"] for a in detail["union_user_attrs"]}
    assert all(sortable[name] for name in NAMED)
    reported = {t["number"]: t for t in doc["trials"]}
    for trial, record in candidates(study):
        mine, row = attrs[trial.number], reported[trial.number]
        for name in ("depth", "width", "resolution"):
            assert float(mine[name]) == pytest.approx(row["effective"][name], abs=1e-4)
        assert int(mine["px"]) == row["input_size"] and int(mine["params"]) == row["params"]
        assert float(mine["flops_ratio"]) == pytest.approx(row["flops_ratio"], abs=1e-4)
        assert float(mine["latency_ms"]) == pytest.approx(row["latency_ms"])
        assert float(mine["accuracy"]) == row["accuracy"]
        # the constraints by name, in the order of the list the dashboard greys trials by
        names = [f"constraint_{key}" for key in record.constraints]
        assert names == ["constraint_valid", "constraint_flops_ratio", "constraint_product"]
        assert [float(mine[k]) for k in names] == trials[trial.number]["constraints"]

    # the re-evaluation and the verdict, whole and in short fields
    study_attrs = {a["key"]: a["value"] for a in detail["user_attrs"]}
    assert study_attrs["verdict"] == read_evaluation(study).verdict == doc["verdict"]
    assert {"eval_base", "eval_rank_1", "eval_phi_2"} <= set(study_attrs)

    # nothing is cut at the dashboard's limit: every attribute shows whole
    for source, served in [(study.user_attrs, study_attrs)] + [
        (study.trials[n].user_attrs, attrs[n]) for n in trials
    ]:
        for key, value in source.items():
            assert served[key] == shown(value), key
            if not isinstance(value, str):
                assert len(shown(value)) <= MAX_ATTR_LENGTH, key
