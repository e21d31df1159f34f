"""Tiny search definitions written into tmp_path: a few hundred digits, one or two epochs."""

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

from .harness import fresh_database

ROOT = Path(__file__).resolve().parents[2]
BASES = ROOT / "search" / "bases"

TINY = {
    "study": "tiny",
    "base": str(BASES / "tiny_effnet.yaml"),
    "mode": "free",
    "space": {"width": {"low": 0.5, "high": 1.0, "step": 0.25}, "kernels": {"stage3": [3, 5]}},
    "data": {"dataset": "digits", "limit": 300},
    "training": {"epochs": 1, "batch_size": 64, "lr": 0.005, "precise_bn": 128},
    "latency": {"warmup": 1, "repeats": 2},
    "evaluation": {"seeds": 0},
    "sampler": "random",
    "trials": 3,
    "seed": 0,
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from a second thread, and a busy machine makes OpenMP's
    barriers wait a scheduler tick each: one thread keeps these tests fast anywhere."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@pytest.fixture
def write_def(tmp_path, monkeypatch):
    """write_def(**changes) -> path of a tiny definition; runs/ goes into tmp_path."""
    monkeypatch.chdir(tmp_path)

    def write(name: str = "tiny", **changes) -> Path:
        data = merge(TINY, {"study": name, **changes})
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server for the multi-worker tests: ARCHSPEC_TEST_POSTGRES (set by .ci/run),
    else a private one started here with .ci/postgres (needs the PostgreSQL binaries); skips
    with the reason when there is none, fails instead under ARCHSPEC_REQUIRE_POSTGRES=1."""
    url = os.environ.get("ARCHSPEC_TEST_POSTGRES")
    if url:
        yield url
        return
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        _no_postgres("psycopg2 is not installed (pip install 'archspec[postgres]')")
    folder = tempfile.mkdtemp(prefix="archspec-pg.", dir="/tmp")  # the postgres user reads it
    started = subprocess.run(
        [str(ROOT / ".ci" / "postgres"), "start", folder], capture_output=True, text=True
    )
    if started.returncode != 0:
        subprocess.run([str(ROOT / ".ci" / "postgres"), "stop", folder], capture_output=True)
        _no_postgres(f"could not start PostgreSQL: {started.stderr.strip()[-300:]}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([str(ROOT / ".ci" / "postgres"), "stop", folder], capture_output=True)


def _no_postgres(reason: str) -> None:
    if os.environ.get("ARCHSPEC_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL was required (ARCHSPEC_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(f"no PostgreSQL: {reason}; set ARCHSPEC_TEST_POSTGRES=postgresql://...")


@pytest.fixture
def storage_url(tmp_path, request):
    """storage_url(kind) -> a fresh storage of that kind: sqlite, journal or postgresql (a new
    database on the test server, so every test starts on an empty schema)."""

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / 'study.db'}"
        if kind == "journal":
            return str(tmp_path / "study.log")
        assert kind == "postgresql", kind
        return fresh_database(request.getfixturevalue("postgres_url"))

    return make
