"""The search commands: scale, search, report, export; exit codes and located errors."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

import archspec.cli.export  # registers the commands
import archspec.cli.search  # noqa: F401 - registers the commands
from archspec.cli import app
from archspec.spec import load_spec

BASES = Path(__file__).resolve().parents[2] / "search" / "bases"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_scale_writes_a_valid_spec(tmp_path):
    out = tmp_path / "wide.yaml"
    result = invoke("scale", BASES / "tiny_effnet.yaml", "--width", 1.5, "--depth", 2,
                    "--resolution", 1.5, "--kernel", "stage2=5", "-o", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    spec = load_spec(out)
    assert spec.input.size == 18
    assert "stage2: kernel 5" in out.read_text().splitlines()[0]
    stage2 = next(item for item in spec.layers if item.name == "stage2")
    assert stage2.repeat == 4 and stage2.args["kernel_size"] == 5


def test_scale_prints_yaml_without_output():
    result = invoke("scale", BASES / "tiny_resnet.yaml", "--size", 24)
    assert result.exit_code == 0 and "size: 24" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kernel", "stage9=5"], "unknown stage 'stage9'"),
        (["--kernel", "stage2"], "--kernel expects STAGE=K"),
        (["--width", "0"], "width multiplier must be in (0, 16]"),
    ],
)
def test_scale_errors_exit_1(args, message):
    result = invoke("scale", BASES / "tiny_effnet.yaml", *args)
    assert result.exit_code == 1 and message in result.output


def test_search_report_export_round_trip(write_def, tmp_path):
    path = write_def()
    result = invoke("search", path, "--trials", 2, "--quiet")
    assert result.exit_code == 0, result.output
    assert "tiny: best trials by accuracy" in result.output
    assert "Same recipe for every candidate" in result.output
    assert (tmp_path / "runs" / "tiny_best.yaml").exists()
    assert "best spec written to runs/tiny_best.yaml" in result.output
    # the output ends with what to do next
    tail = result.output[result.output.index("next steps:") :]
    assert "sqlite:///runs/tiny.db" in tail and "archspec report tiny" in tail
    assert "optuna-dashboard sqlite:///runs/tiny.db" in tail
    assert "runs/tiny.db, runs/tiny_best.yaml" in tail

    again = invoke("search", path, "--trials", 3, "--quiet")  # resumes: runs the missing one
    assert (
        again.exit_code == 0
        and "4 trials, each a distinct network: the base (trial 0)" in again.output
    )
    assert "1 trials in" in again.output
    same = invoke("search", path, "--trials", 3, "--quiet")  # the target is already held
    assert same.exit_code == 0 and "0 trials in" in same.output

    report = invoke("report", "tiny", "--plots", tmp_path / "plots")
    assert report.exit_code == 0, report.output
    for name in ("history", "slice"):
        assert (tmp_path / "plots" / f"{name}.html").exists()
        assert (tmp_path / "plots" / f"{name}.png").stat().st_size > 1000
    # three networks: no importances, and one line saying why
    assert not (tmp_path / "plots" / "importances.html").exists()
    assert "plot skipped: importances: left out: 3 distinct trained networks, fewer than the 8" in (
        report.output
    )
    # Optuna's trial numbers, not a renumbered copy (trial 0, the base, is not a candidate)
    assert '"x":[1,2,3]' in (tmp_path / "plots" / "history.html").read_text()

    out = tmp_path / "trial1.yaml"
    exported = invoke("export", path, "--trial", 1, "-o", out)
    assert exported.exit_code == 0, exported.output
    assert "trial 1" in out.read_text()
    assert "weights:" not in exported.output  # a spec file holds none
    exported = invoke("export", path, "--trial", 1, "-o", tmp_path / "trial1.safetensors")
    assert exported.exit_code == 0, exported.output
    assert "weights: runs/tiny/weights/trial-1.safetensors" in exported.output  # trained ones

    # the winner with the weights it was evaluated with: the search's bundle
    best = invoke("export", path, "-o", tmp_path / "best.safetensors")
    assert best.exit_code == 0, best.output
    assert "weights: bundle runs/tiny/best" in best.output
    from safetensors.torch import load_file

    written, kept = (
        load_file(tmp_path / "best.safetensors"),
        load_file("runs/tiny/best/weights.safetensors"),
    )
    assert written.keys() == kept.keys() and all(written[k].equal(kept[k]) for k in kept)


def test_search_bad_definition_exit_1_with_location(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"study: x\nbase: {BASES / 'tiny_effnet.yaml'}\nmode: sideways\n")
    result = invoke("search", bad)
    assert result.exit_code == 1
    assert f"{bad}:3:7: mode:" in result.output


def test_report_and_export_of_a_missing_study_exit_1(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("report", "nothing").exit_code == 1
    result = invoke("export", "nothing", "-o", tmp_path / "x.yaml")
    assert result.exit_code == 1 and "no study database" in result.output


def test_export_bad_trial_number(write_def, tmp_path):
    path = write_def(trials=1)
    assert invoke("search", path, "--quiet").exit_code == 0
    result = invoke("export", path, "--trial", 7, "-o", tmp_path / "x.yaml")
    assert result.exit_code == 1 and "has trials 0..1; got 7" in result.output
    assert invoke("export", path, "--trial", "worst", "-o", tmp_path / "x.yaml").exit_code == 2


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "postgresql+pg8000://u@127.0.0.1/db",
            "storage postgresql+pg8000://...: its database driver, pg8000, is not installed",
        ),
        ("postgresql://u@127.0.0.1/db", "write postgresql+psycopg2://USER:PASSWORD@HOST/DB"),
    ],
)
def test_a_storage_url_whose_driver_is_missing_gets_one_line(url, says, tmp_path, monkeypatch):
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg"):
        pytest.skip("psycopg is installed here: the URL would try to connect")
    digits = Path(__file__).resolve().parents[2] / "search" / "digits_compound.yaml"
    monkeypatch.chdir(tmp_path)
    for args in (["report", "somestudy", "--storage", url], ["search", digits, "--storage", url]):
        result = invoke(*args)
        assert result.exit_code == 1, result.output
        assert says in result.output
        assert "internal error" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
