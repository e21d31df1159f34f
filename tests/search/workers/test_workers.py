"""Several workers on one study, with real processes and real signals: the target is exact, a
killed worker's trial is retried with its parameters, nothing is left RUNNING or trained twice."""

import multiprocessing
import signal

import optuna
import pytest
import torch
from optuna.trial import TrialState

from archspec.search.definition.model import Heartbeat
from archspec.search.study import claims
from archspec.search.study.heartbeat import open_storage
from archspec.search.study.queries import Tally
from archspec.search.workers.launch import WorkerPlan, plan_workers, visible_gpus
from archspec.search.workers.loop import run_trials

from .. import harness


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["postgresql", "journal", "sqlite"])
def test_sigkill_of_one_of_three_workers_loses_nothing(kind, storage_url, tmp_path):
    if kind == "journal":  # three workers of one `--workers 3` launcher, one killed
        killed = harness.kill_launched(tmp_path, storage_url(kind), signal.SIGKILL)
        assert f"exited with {-signal.SIGKILL}; the other workers finished" in killed.stderr
    else:  # three separate `archspec search` processes joining one study
        killed = harness.kill_one(tmp_path, storage_url(kind), signal.SIGKILL)
        assert killed.exit_code == -signal.SIGKILL
    outcome = killed.outcome
    assert outcome.finished == 1 + 6  # exactly the base and the target, all workers together
    assert outcome.running == 0 and outcome.waiting == 0
    assert outcome.killed_state == "FAIL"  # failed once its heartbeat went stale...
    assert outcome.retried  # ...and finished by another worker, with the same parameters
    assert outcome.trained_twice == []


@pytest.mark.slow
def test_a_lock_left_by_a_dead_worker_stalls_the_others_but_loses_nothing(tmp_path):
    """A worker killed while it held the journal file's lock leaves the lock behind: the
    others wait until Optuna breaks it (30 s), their own trials go stale meanwhile and are
    failed and retried by each other. Every worker carries on: none exits with an error."""
    import os
    import time

    storage = str(tmp_path / "study.log")
    launcher = harness.start(harness.write_def(tmp_path, trials=6), storage, "--workers", "3")
    harness.running_trial(storage)
    while True:  # the lock, as a worker killed inside a write left it (once it is free)
        try:
            os.symlink(storage, storage + ".lock")
            break
        except FileExistsError:
            time.sleep(0.005)
    _, stderr = launcher.communicate(timeout=600)
    assert launcher.returncode == 0, stderr[-2000:]
    assert "exited with" not in stderr and "internal error" not in stderr, stderr[-2000:]
    assert "Traceback" not in stderr
    study = harness.load(storage)
    states = [t.state for t in study.trials if "archspec_repeat_of" not in t.user_attrs]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 1 + 6
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")]
)
def test_sigterm_and_ctrl_c_fail_the_trial_and_exit_in_one_line(
    signum, code, name, storage_url, tmp_path
):
    killed = harness.kill_one(tmp_path, storage_url("journal"), signum, workers=1, target=3)
    assert killed.exit_code == code and killed.seconds_to_exit < 10
    lines = killed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{name}: trial "), killed.stderr
    assert "Traceback" not in killed.stderr
    assert "run the same command to resume" in lines[0]
    outcome = killed.outcome  # after the same command ran again
    assert outcome.killed_state == "FAIL" and outcome.retried
    assert (outcome.finished, outcome.running, outcome.waiting) == (1 + 3, 0, 0)


def _objective(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0, 1)


def _run_target(url: str, target: int) -> int:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(url, Heartbeat(interval=1, grace_period=3))
    study = optuna.create_study(study_name="race", storage=storage, load_if_exists=True)
    return run_trials(study, _objective, target, poll=0.1).done


def _claim_in_process(url: str, key: str) -> bool:
    study = optuna.load_study(study_name="race", storage=open_storage(url))
    return claims.claim(study, key)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_workers_starting_together_on_a_fresh_storage_hit_the_target_exactly(kind, storage_url):
    """Optuna's schema creation races (alembic_version) and the last places of the target are
    contended: four processes at once still end with exactly the target."""
    url = storage_url(kind)
    with multiprocessing.get_context("fork").Pool(4) as pool:
        done = pool.starmap(_run_target, [(url, 12)] * 4)
        study = optuna.load_study(study_name="race", storage=open_storage(url))
        assert sum(done) == 12 and Tally.of(study) == Tally(12, 0, 0)
        # a surplus trial (started once the others filled the target) fails before sampling
        surplus = [t for t in study.trials if t.state == TrialState.FAIL]
        assert all(
            t.user_attrs["fail_reason"].startswith("surplus") and not t.params for t in surplus
        )
        won = pool.starmap(_claim_in_process, [(url, "family:12")] * 4)
    assert sorted(won) == [False, False, False, True]  # exactly one process gets a claim


def test_a_rerun_runs_only_the_missing_trials(tmp_path):
    url = str(tmp_path / "study.log")
    assert _run_target(url, 3) == 3
    assert _run_target(url, 3) == 0
    assert _run_target(url, 5) == 2


def test_worker_plans_split_threads_and_spread_gpus():
    plans = plan_workers(3, cpus=8, gpus=["0", "1"])
    assert plans == [WorkerPlan(0, 2, "0"), WorkerPlan(1, 2, "1"), WorkerPlan(2, 2, "0")]
    env = plans[1].env({"PATH": "/bin"})
    assert env == {"PATH": "/bin", "OMP_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": "1"}
    assert [p.gpu for p in plan_workers(2, cpus=2)] == [None, None]  # CPU only: untouched
    assert [p.threads for p in plan_workers(4, cpus=2)] == [1, 1, 1, 1]
    assert [p.threads for p in plan_workers(2, cpus=16, threads=3)] == [3, 3]


def test_visible_gpus_follow_the_flag_then_cuda_visible_devices():
    assert visible_gpus("2,3", {"CUDA_VISIBLE_DEVICES": "0"}, cuda_count=4) == ["2", "3"]
    assert visible_gpus(None, {"CUDA_VISIBLE_DEVICES": "5,7"}, cuda_count=2) == ["5", "7"]
    assert visible_gpus(None, {}, cuda_count=2) == ["0", "1"]
    assert visible_gpus(None, {}, cuda_count=0) == []
    assert visible_gpus(None, {"CUDA_VISIBLE_DEVICES": ""}, cuda_count=0) == []


@pytest.mark.parametrize("failure", ["nan", "oom"])
def test_a_diverging_or_oom_trial_is_recorded_and_the_search_goes_on(
    failure, write_def, monkeypatch
):
    from archspec.search import load_search, recipe, run_search
    from archspec.search.study.records import read_trial
    from archspec.train.loop import TrainResult

    def train(model, data, cfg, *, desc="", **kwargs):
        if desc == "base":
            return TrainResult(0.5, [0.5])
        if failure == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))  # what a NaN loss leaves behind
        return TrainResult(0.1, [0.1])

    monkeypatch.setattr(recipe, "train", train)
    study = run_search(load_search(write_def(trials=2)), quiet=True).study
    assert Tally.of(study) == Tally(1 + 2, 0, 0)  # all recorded as finished; the study went on
    expected = "diverged: non-finite" if failure == "nan" else "out of memory on cpu"
    candidates = [read_trial(t) for t in study.trials if t.number > 0]
    assert len(candidates) == 2
    for record in candidates:
        assert record.reason.startswith(expected)
        assert not record.feasible and record.constraints["valid"] > 0


def test_report_and_export_say_when_a_trial_never_finished(write_def, tmp_path, monkeypatch):
    from rich.console import Console

    from archspec.errors import ExportError
    from archspec.search import export_trial, load_search, recipe, run_search
    from archspec.search.report import print_report
    from archspec.train.loop import TrainResult

    monkeypatch.setattr(recipe, "train", lambda model, data, cfg, **kw: TrainResult(0.5, [0.5]))
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = run_search(load_search(write_def(trials=1)), storage=url, quiet=True).study
    hung = study.ask()  # a trial whose worker vanished before any heartbeat
    failed = study.ask()
    study.tell(failed, state=TrialState.FAIL)
    console = Console(record=True, width=200)
    print_report(study, console)
    text = console.export_text()
    assert f"trial {hung.number} never finished: running" in text
    assert f"trial {failed.number} never finished: failed" in text
    with pytest.raises(ExportError, match=f"trial {hung.number} never finished"):
        export_trial(study, tmp_path / "x.yaml", str(hung.number))


def test_once_is_taken_by_one_process_and_taken_over_from_a_dead_one(tmp_path):
    study = optuna.create_study(study_name="race", storage=open_storage(str(tmp_path / "s.log")))
    with claims.once(study, "family:3", lease=30) as first:
        with claims.once(study, "family:3", lease=30) as second:  # while the first holds it
            assert (first, second) == (True, False)
    with claims.once(study, "family:3") as again:
        assert not again  # done work keeps its claim
    with pytest.raises(RuntimeError), claims.once(study, "family:4") as mine:
        assert mine
        raise RuntimeError("the family step failed")
    with claims.once(study, "family:4") as retry:
        assert retry  # a failed holder released it
    assert claims.claim(study, "family:5:0")  # a holder killed long ago: its claim lapsed
    key = claims.CLAIM_PREFIX + "family:5:0"
    study._storage.set_study_system_attr(study._study_id, key, {**claims.owner(), "at": 0.0})
    with claims.once(study, "family:5", lease=30) as takeover:
        assert takeover
