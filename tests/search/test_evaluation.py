"""The seeds re-evaluation: stored, reported without retraining, rerun when a finished study asks
for it; intervals stay within what an accuracy can be."""

import optuna
import pytest

from archspec.search import load_search, recipe, run_search
from archspec.search.study.records import read_evaluation
from tests.search.stubs import COMPOUND, stub_train

COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


def test_re_evaluation_is_stored_and_reported_without_retraining(write_def, monkeypatch):
    from typer.testing import CliRunner

    import archspec.cli.search  # noqa: F401 - registers the commands
    from archspec.cli import app

    calls = []
    monkeypatch.setattr(recipe, "train", stub_train(calls, lambda n: 0.5 + 0.01 * (n % 7)))
    cheaper = {**COMPOUND, "compound": {"flops_ratio": 2.0, "phi": 2}, "trials": 3}
    defn = load_search(
        write_def("compound", **cheaper, evaluation={"top_k": 2, "seeds": 2, "processes": 1})
    )
    result = run_search(defn, quiet=True)
    evaluation = result.evaluation
    assert evaluation == read_evaluation(result.study) and evaluation.seeds == [1, 2]
    labels = [e.label for e in evaluation.entries]
    assert labels[:2] == ["base", "rank 1"] and labels[-1] == "phi=2"
    assert all(len(e.scores.val) == len(e.scores.test) == 2 for e in evaluation.entries)
    assert "the winner" in evaluation.verdict and "the base" in evaluation.verdict
    reeval = [c for c in calls if " seed " in c]
    assert len(reeval) == 2 * len(labels)

    def forbidden(*args, **kwargs):
        raise AssertionError("report retrained something")

    monkeypatch.setattr(recipe, "train", forbidden)
    out = CliRunner().invoke(app, ["report", "compound", "--json"])
    assert out.exit_code == 0, out.output
    import json

    doc = json.loads(out.output)
    entries = {e.label: e for e in evaluation.entries}
    for key, label in (("base", "base"), ("winner", "rank 1")):
        scores = entries[label].scores
        assert doc[key]["number"] == entries[label].trial
        assert doc[key]["seeds"] == [1, 2]
        assert doc[key]["val_accuracy_mean"] == pytest.approx(sum(scores.val) / 2)
        assert doc[key]["test_accuracy_mean"] == pytest.approx(sum(scores.test) / 2)
        assert {"params", "flops", "val_accuracy_std", "test_accuracy_std"} <= set(doc[key])
    assert doc["base"]["number"] == 0
    assert [m["phi"] for m in doc["family"]] == [1, 2]
    for m in doc["family"]:
        assert m["target_flops_ratio"] == 2.0 ** m["phi"]
        assert {"params", "flops", "flops_ratio", "test_accuracy_mean", "seeds"} <= set(m)
    assert [t["number"] for t in doc["trials"]] == list(range(len(result.study.trials)))
    assert set(doc["trials"][0]) >= {"number", "state", "trained", "params", "flops", "accuracy"}


def test_intervals_stay_within_what_an_accuracy_can_be():
    from archspec.search.study.records import Scores

    low, high = Scores.interval([0.99, 1.0])  # two seeds: the t interval runs past 1
    assert 0.0 <= low < 0.99 and high == 1.0
    mean, _, half = Scores.summary([0.99, 1.0])
    assert mean + half > 1.0  # the comparison still uses the unclipped interval
    assert Scores.interval([0.0, 0.02])[0] == 0.0


def test_asking_a_finished_study_for_a_seeds_re_evaluation_runs_it(write_def, monkeypatch):
    monkeypatch.setattr(recipe, "train", stub_train([]))
    run_search(load_search(write_def(trials=2)), quiet=True)
    again = load_search(write_def(trials=2, evaluation={"seeds": 2, "top_k": 1, "processes": 1}))
    result = run_search(again, quiet=True)
    assert result.added == 0  # no trial ran again
    assert result.evaluation is not None and result.evaluation.seeds == [1, 2]
    assert read_evaluation(result.study) == result.evaluation


def _entry(label, trial, test):
    from archspec.search.study.records import Evaluated, Scores

    seeds = list(range(1, len(test) + 1))
    return Evaluated(
        label=label,
        trial=trial,
        params=1,
        flops=1,
        spec_hash=label,
        scores=Scores(seeds=seeds, val=test, test=test),
    )


@pytest.mark.parametrize(
    ("winner", "base", "says"),
    [
        ([0.9, 0.9], [0.5, 0.6], "2 seeds: too few seeds to judge"),
        ([0.9], [0.5], "1 seed: too few seeds to judge"),
        ([0.9, 0.9, 0.9], [0.5, 0.6, 0.55], "all 3 seeds agree exactly: a zero spread"),
    ],
)
def test_too_few_seeds_or_a_zero_spread_is_not_judged(winner, base, says):
    from archspec.search.evaluation import verdict
    from archspec.search.report import _stat

    text = verdict([_entry("base", 0, base), _entry("rank 1", 3, winner)])
    assert f"not judged ({says}" in text
    assert "beyond the noise" not in text and "within the noise" not in text
    assert "95%" not in text
    assert says in _stat(winner) and "[" not in _stat(winner)


def test_three_seeds_with_a_spread_are_judged():
    from archspec.search.evaluation import verdict

    text = verdict([_entry("base", 0, [0.5, 0.52, 0.51]), _entry("rank 1", 3, [0.9, 0.91, 0.92])])
    assert "beyond the noise (95% intervals" in text


def test_importances_rest_on_the_built_networks_and_say_how_many(write_def, monkeypatch, tmp_path):
    from archspec.search.report import built_networks, save_plots
    from tests.search.stubs import candidates

    monkeypatch.setattr(recipe, "train", stub_train([], lambda n: 0.3 + 0.05 * n))
    space = {"width": {"low": 0.5, "high": 1.0, "step": 0.05}, "kernels": {"stage3": [3, 5]}}
    study = run_search(load_search(write_def(space=space, trials=9)), quiet=True).study
    built = built_networks(study)
    assert len(built.trials) == 9  # one point per distinct network, not per proposal
    by_value = {t.values[0]: t for t in built.trials}
    for trial, record in candidates(study):
        point = by_value[trial.values[0]]
        assert point.params["width"] == record.effective.width  # what was built, not sampled
        if "kernel_stage3" in point.params:
            assert point.params["kernel_stage3"] == record.knobs["kernels"]["stage3"]
    _, skipped = save_plots(study, tmp_path / "plots")
    assert not skipped
    page = (tmp_path / "plots" / "importances.html").read_text()
    assert "importance of the built networks (9 distinct, trained)" in page
