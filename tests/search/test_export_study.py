"""Exporting (and retraining) a study's trial: only with the weights that study kept in its
own runs/<study>/ folder; random weights only when asked for; a folder that belongs to a study
of the same name in another storage is refused, saying what to do."""

import pytest
from typer.testing import CliRunner

import archspec.cli.export  # registers the commands
import archspec.cli.search
import archspec.cli.train  # noqa: F401
from archspec.cli import app
from archspec.search import load_search, recipe, run_search
from tests.search.stubs import candidates, stub_train

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def study(write_def, monkeypatch):
    monkeypatch.setattr(recipe, "train", stub_train([]))
    path = write_def("owned", trials=6, constraints={"max_params": 30_000})
    result = run_search(load_search(path), quiet=True)
    return path, result.study


def test_a_trial_without_kept_weights_is_refused_unless_random_weights_are_asked(study, tmp_path):
    path, loaded = study
    untrained = [t.number for t, r in candidates(loaded) if r.status == "rejected"]
    assert untrained, "the max_params limit rejects the wider candidates"
    n = untrained[0]
    result = invoke("export", path, "--trial", n, "-o", tmp_path / "m.safetensors")
    assert result.exit_code == 1
    assert (
        f"trial {n} of study 'owned' has no kept weights in runs/owned/ (rejected:" in result.output
    )
    assert f"archspec train {path} --trial {n}" in result.output
    assert "--random-weights" in result.output
    assert not (tmp_path / "m.safetensors").exists()
    result = invoke(
        "export", path, "--trial", n, "-o", tmp_path / "m.safetensors", "--random-weights"
    )
    assert result.exit_code == 0, result.output
    assert "weights: random (seed 0), as --random-weights asked" in result.output
    # a spec file holds no weights: no flag needed
    assert invoke("export", path, "--trial", n, "-o", tmp_path / "m.yaml").exit_code == 0


def test_the_best_trial_exports_with_its_kept_weights(study, tmp_path):
    path, _ = study
    result = invoke("export", path, "-o", tmp_path / "best.safetensors")
    assert result.exit_code == 0, result.output
    assert "weights: bundle runs/owned/best" in result.output


@pytest.mark.slow
def test_a_folder_of_another_storage_s_study_is_refused_for_export_and_train(
    study, tmp_path, monkeypatch
):
    path, _ = study
    monkeypatch.setattr(recipe, "train", stub_train([]))
    journal = tmp_path / "other.log"
    # the same study name in another storage: its search refuses the folder, naming the option
    result = invoke("search", path, "--storage", journal, "-q", "--trials", 1)
    assert result.exit_code == 1
    assert result.output.count("holds the files of another study") == 1
    assert "--study-name NAME" in result.output
    assert "give it another study name" not in result.output
    # --workers: refused by the launcher, once, before any worker starts
    result = invoke("search", path, "--storage", tmp_path / "third.log", "--workers", 2, "-q")
    assert result.exit_code == 1
    assert result.output.count("holds the files of another study") == 1
    assert "run the same command" not in result.output
    assert not (tmp_path / "third.log").exists()
    # the journal study run elsewhere, then exported from here: runs/owned/ here holds the
    # SQLite study's weights, which export and train refuse for it
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert invoke("search", path, "--storage", journal, "-q", "--trials", 1).exit_code == 0
    monkeypatch.chdir(tmp_path)
    for args in (
        ("export", path, "--storage", journal, "-o", tmp_path / "x.safetensors"),
        ("train", path, "--storage", journal, "--trial", "best"),
    ):
        result = invoke(*args)
        assert result.exit_code == 1, result.output
        assert "runs/owned/ holds the files of another study named 'owned'" in result.output


def test_study_name_gives_the_same_search_its_own_folder_and_database(study, monkeypatch):
    path, _ = study
    monkeypatch.setattr(recipe, "train", stub_train([]))
    result = invoke("search", path, "--study-name", "owned2", "-q", "--trials", 1)
    assert result.exit_code == 0, result.output
    assert "sqlite:///runs/owned2.db" in result.output
    assert invoke("export", "owned2", "--trial", "best", "-o", "o2.safetensors").exit_code == 0


@pytest.mark.slow
def test_the_readme_multi_worker_example_runs_after_the_sqlite_study(study, tmp_path):
    """The README runs the SQLite quickstart first, then its --workers example on a journal
    file: the second must get a folder of its own, not the first study's."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    line = next(
        x for x in readme.splitlines() if x.startswith("archspec search") and "--workers 2" in x
    )
    args = line.split()[3:]  # after `archspec search DEFINITION`
    assert "--study-name" in args and "--storage" in args
    path, _ = study  # the SQLite study of the same definition, run first
    name = args[args.index("--study-name") + 1]
    args[args.index("--storage") + 1] = str(tmp_path / "journal.log")
    result = invoke("search", path, *args, "-q", "--trials", 2)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / name / "study.json").exists()
