"""Every CLI mistake is one readable line on stderr and a non-zero exit, never a traceback;
`--debug` shows the traceback; a finished search says where its trials are kept."""

import errno
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import archspec
from archspec.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _commands():
    from archspec.cli import analysis, search, spec, train  # noqa: F401


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line(result):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"archspec {archspec.__version__}\n"


def test_missing_file():
    assert one_line(run("validate", "nonexistent.yaml")) == (
        "nonexistent.yaml: cannot read spec: No such file or directory"
    )


def test_output_under_a_regular_file(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    line = one_line(run("scale", "resnet18", "--width", "0.5", "-o", blocker / "x.yaml"))
    assert line == f"{blocker}: is a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # no partial file


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("notaurl", "no study database 'notaurl'; run `archspec search` first, or pass --storage"),
        ("bogus://x", "storage: Can't load plugin: sqlalchemy.dialects:bogus"),
    ],
)
def test_invalid_storage_url(url, message):
    assert one_line(run("report", "nostudy", "--storage", url)) == message


def test_full_disk_after_a_finished_search(monkeypatch, tmp_path):
    import archspec.search
    import archspec.search.report
    from archspec.search.run import SearchResult

    def full(study, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(
        archspec.search, "run_search", lambda defn, **kw: SearchResult(None, 3, 1.0)
    )
    monkeypatch.setattr(archspec.search.report, "print_report", lambda study, console: None)
    monkeypatch.setattr(archspec.search, "export_trial", full)
    result = run("search", "digits_compound", "-o", tmp_path / "best.yaml")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'best.yaml'}: No space left on device",
        "the search finished; its trials are kept in sqlite:///runs/digits_compound.db",
    ]


def test_internal_error_is_one_line_and_debug_shows_the_traceback(monkeypatch):
    import archspec.graph

    def boom(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(archspec.graph, "build_graph", boom)
    assert one_line(run("validate", "resnet18")) == (
        "internal error: ValueError: boom (a bug in archspec; run with --debug for the traceback)"
    )
    result = run("--debug", "validate", "resnet18")
    assert isinstance(result.exception, ValueError)


def test_piped_tables_are_not_cut_at_80_columns():
    proc = subprocess.run(
        [sys.executable, "-m", "archspec", "summary", "resnet18"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "layer4.1.conv2" in line)
    assert "2,359,296" in row and len(row) > 80
    assert "…" not in proc.stdout


def test_no_progress_bar_control_codes_when_stderr_is_not_a_terminal(capsys):
    import optuna

    from archspec.search.run import _StudyProgress

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="t")
    with _StudyProgress(study, 3, quiet=False) as progress:
        progress.bar.update(1)
    assert "\r" not in capsys.readouterr().err
