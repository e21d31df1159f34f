"""A study store that cannot be used is one line saying why (read-only, damaged), from the
library and from the CLI, and nothing in it is changed."""

import os

import optuna
import pytest
from typer.testing import CliRunner

from archspec.errors import SearchError
from archspec.search.study.heartbeat import open_storage
from archspec.search.study.storage import load_study


def test_a_file_that_is_not_a_database_is_damaged(tmp_path):
    path = tmp_path / "runs" / "s.db"
    path.parent.mkdir()
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(SearchError, match=r"damaged: it is not a readable study store"):
        load_study("s", f"sqlite:///{path}")
    assert path.read_bytes() == b"this is not SQLite" * 100


def test_a_journal_with_a_damaged_record_in_the_middle_is_one_line(tmp_path):
    path = tmp_path / "s.log"
    study = optuna.create_study(study_name="s", storage=open_storage(str(path)))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = b'{"op_code": 1, "broken\n'
    path.write_bytes(b"".join(lines))
    with pytest.raises(SearchError, match=r"damaged: it is not a readable study journal"):
        load_study("s", str(path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files anyway")
def test_a_read_only_database_is_one_line(tmp_path):
    path = tmp_path / "s.db"
    optuna.create_study(study_name="s", storage=f"sqlite:///{path}")
    path.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        study = optuna.load_study(study_name="s", storage=f"sqlite:///{path}")
        with pytest.raises(Exception) as info:
            study.optimize(lambda t: 0.0, n_trials=1)
        from archspec.search.study.heartbeat import storage_fault

        fault = storage_fault(info.value, f"sqlite:///{path}")
        assert fault is not None and "read-only" in fault.message
    finally:
        tmp_path.chmod(0o755)


def test_the_cli_says_damaged_in_one_line(tmp_path, monkeypatch):
    import archspec.cli.search  # noqa: F401 - registers report
    from archspec.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "s.db").write_bytes(b"garbage" * 1000)
    result = CliRunner().invoke(app, ["report", "s"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "damaged" in lines[0] and "Traceback" not in result.output
