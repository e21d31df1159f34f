"""Real worker processes on one study, and real signals: the harness of the multi-worker tests
(`python -m tests.search.harness` prints the kill table of the closing note)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[2]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

# A tiny free search: continuous width (so two workers rarely draw the same candidate; equal
# channels after rounding still repeat a network), three epochs on 300 digits, a short
# heartbeat so a killed worker's trial is retried within seconds.
WORKER_DEF = {
    "study": "workers",
    "base": str(ROOT / "search" / "bases" / "tiny_effnet.yaml"),
    "mode": "free",
    "space": {"width": {"low": 0.5, "high": 1.0}},
    "data": {"dataset": "digits", "limit": 300},
    # 3 epochs: a trained trial runs long enough (about a second) to be told from a repeat
    "training": {"epochs": 3, "batch_size": 64, "lr": 0.005, "precise_bn": 128, "threads": 1},
    "latency": {"warmup": 1, "repeats": 2},
    "sampler": "random",
    "evaluation": {"seeds": 0},
    "heartbeat": {"interval": 1, "grace_period": 5},
    "trials": 6,
    "seed": 0,
}


def write_def(folder: Path, **changes) -> Path:
    path = folder / "workers.yaml"
    path.write_text(yaml.safe_dump({**WORKER_DEF, **changes}, sort_keys=False))
    return path


def start(definition: Path, storage: str, *extra: str) -> subprocess.Popen:
    """`archspec search DEF --storage URL -q` as its own process (the way users join)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "archspec",
            "search",
            str(definition),
            "--storage",
            storage,
            "-q",
            *extra,
        ],
        cwd=definition.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def load(storage: str, name: str = "workers") -> optuna.Study:
    from archspec.search.study.heartbeat import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name=name, storage=open_storage(storage))


def running_trial(
    storage: str, pid: int | None = None, *, warm: bool = False, timeout: float = 300.0
) -> tuple[int, int]:
    """(trial number, worker pid) of a trial that process `pid` (default: any worker) is
    training, once its parameters are drawn; `warm`: a trial after that worker's first
    finished one (torch's lazy imports are behind it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            trials = load(storage).get_trials(deepcopy=False)
            for t in trials:
                worker = t.user_attrs.get("worker", "")
                owner = int(worker.rsplit(":", 1)[1]) if worker else None
                if owner is None or (pid is not None and owner != pid):
                    continue
                mine = [u for u in trials if u.user_attrs.get("worker") == worker]
                if warm and not any(u.state in FINISHED for u in mine):
                    continue
                # running for a while: training, not a repeat of an earlier network (those
                # replay its outcome in milliseconds and would finish before the signal lands)
                if (
                    t.state == TrialState.RUNNING
                    and t.params
                    and t.datetime_start is not None
                    and (datetime.now() - t.datetime_start).total_seconds() > 0.15
                ):
                    return t.number, owner
        except Exception:  # the study, or its tables, are not there yet
            pass
        time.sleep(0.1)
    raise TimeoutError(f"no worker ran a trial within {timeout} s")


@dataclass
class Outcome:
    target: int  # finished trials the study should hold: the base and `trials`
    finished: int
    running: int
    waiting: int
    killed_state: str
    retried: bool  # a finished retry of the killed trial, with its parameters
    trained_twice: list[str]  # parameters trained by more than one finished trial

    @classmethod
    def of(cls, study: optuna.Study, killed: int, target: int) -> Outcome:

        trials = study.get_trials(deepcopy=False)
        # a proposal that rebuilt an earlier network is not a trial
        finished = [
            t for t in trials if t.state in FINISHED and "archspec_repeat_of" not in t.user_attrs
        ]
        victim = trials[killed]
        # the retry may turn out a repeat (another worker trained that network meanwhile):
        # nothing is lost either way
        retries = [
            t
            for t in trials
            if t.state in FINISHED and t.system_attrs.get("failed_trial") == killed
        ]
        params = [
            json.dumps(t.params, sort_keys=True) for t in finished if "history" in t.user_attrs
        ]
        return cls(
            target=target,
            finished=len(finished),
            running=sum(t.state == TrialState.RUNNING for t in trials),
            waiting=sum(t.state == TrialState.WAITING for t in trials),
            killed_state=victim.state.name,
            retried=len(retries) == 1 and retries[0].params == victim.params,
            trained_twice=sorted({p for p in params if params.count(p) > 1}),
        )

    @property
    def ok(self) -> bool:
        return (
            self.finished == self.target
            and self.running == 0
            and self.waiting == 0
            and self.killed_state == "FAIL"
            and self.retried
            and not self.trained_twice
        )


@dataclass
class Killed:
    outcome: Outcome
    exit_code: int
    seconds_to_exit: float  # from the signal to the victim's exit
    stderr: str  # the victim's


def kill_one(
    folder: Path, storage: str, signum: int, *, workers: int = 3, target: int = 6
) -> Killed:
    """`workers` processes on one fresh study; `signum` to one of them in the middle of a
    trial; the others finish the study (for a single worker: the same command run again)."""
    definition = write_def(folder, trials=target)
    procs = [start(definition, storage) for _ in range(workers)]
    victim = procs[-1]
    # a lone worker is signalled in its second trial, so the time to exit is its own
    killed, _ = running_trial(storage, victim.pid, warm=workers == 1)
    sent = time.monotonic()
    victim.send_signal(signum)
    _, stderr = victim.communicate(timeout=60)
    seconds = time.monotonic() - sent
    others = procs[:-1] or [start(definition, storage)]
    for proc in others:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"a surviving worker failed ({proc.returncode}): {err[-2000:]}")
    outcome = Outcome.of(load(storage), killed, target + 1)  # and the base, trial 0
    return Killed(outcome, victim.returncode, seconds, stderr)


def kill_launched(
    folder: Path, storage: str, signum: int, *, workers: int = 3, target: int = 6
) -> Killed:
    """`archspec search DEF --workers N`; `signum` to one of its workers in the middle of a
    trial; the launcher's other workers finish the study and the launcher exits 0."""
    definition = write_def(folder, trials=target)
    launcher = start(definition, storage, "--workers", str(workers))
    killed, pid = running_trial(storage)
    sent = time.monotonic()
    os.kill(pid, signum)
    _, stderr = launcher.communicate(timeout=600)
    if launcher.returncode != 0:
        raise RuntimeError(f"the launcher failed ({launcher.returncode}): {stderr[-2000:]}")
    outcome = Outcome.of(load(storage), killed, target + 1)  # and the base, trial 0
    return Killed(outcome, -signum, time.monotonic() - sent, stderr)


def main() -> None:
    """The closing note's table: each signal on each storage, with real processes."""
    import tempfile

    server = os.environ.get("ARCHSPEC_TEST_POSTGRES")
    kinds = ["sqlite", "journal"] + (["postgresql"] if server else [])
    print(
        "| storage | signal | exit | s to exit | left RUNNING | killed trial | retried | finished / target | trained twice |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        for signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                if kind == "sqlite":
                    storage = f"sqlite:///{folder / 'study.db'}"
                elif kind == "journal":
                    storage = str(folder / "study.log")
                else:
                    storage = fresh_database(server)
                r = kill_one(folder, storage, signum)
                o = r.outcome
                print(
                    f"| {kind} | {signal.Signals(signum).name} | {r.exit_code} | {r.seconds_to_exit:.1f} | "
                    f"{o.running} | {o.killed_state} | {'yes' if o.retried else 'NO'} | "
                    f"{o.finished} / {o.target} | {len(o.trained_twice)} |",
                    flush=True,
                )


def fresh_database(server: str, prefix: str = "t") -> str:
    """A new, empty database on the PostgreSQL `server` (a URL); its URL."""
    import uuid

    import sqlalchemy

    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return server.rsplit("/", 1)[0] + "/" + name


if __name__ == "__main__":
    main()
