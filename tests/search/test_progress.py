"""Progress off a terminal: one flushed line per finished trial, family member and
re-evaluation run on stderr when it is not a terminal; --quiet silences them."""

import re

import pytest
from typer.testing import CliRunner

import archspec.cli.search  # noqa: F401 - registers the commands
from archspec.cli import app
from archspec.search import recipe
from tests.search.stubs import COMPOUND, stub_train


@pytest.mark.slow
def test_one_line_per_trial_family_member_and_re_evaluation_run(write_def, monkeypatch):
    monkeypatch.setattr(recipe, "train", stub_train([]))
    path = write_def(
        **{**COMPOUND, "trials": 3}, evaluation={"seeds": 2, "top_k": 1, "processes": 1}
    )
    result = CliRunner().invoke(app, ["search", str(path)])  # stderr: not a terminal
    assert result.exit_code == 0, result.output
    err = result.stderr
    trials = re.findall(r"^trial (\d+): (\w+).*, [\d.]+ s.* \((\d+)/4 finished\)$", err, re.M)
    assert [t[0] for t in trials][:1] == ["0"] and trials[0][1] == "base"
    assert trials[-1][2] == "4"
    assert re.search(
        r"^trial 0: base 12 px, depth 1.00 width 1.00 resolution 1.00, 1.00x FLOPs, "
        r"accuracy 0.5000, [\d.]+ s",
        err,
        re.M,
    )
    assert re.search(r"^family phi=2: \d+ px, target 4x FLOPs, accuracy 0.5000", err, re.M)
    runs = re.findall(
        r"^re-evaluation (\d+)/(\d+): .* seed \d+: validation [\d.]+, test [\d.]+", err, re.M
    )
    assert runs and runs[-1][0] == runs[-1][1]

    quiet = CliRunner().invoke(app, ["search", str(path), "-q", "--trials", 4])
    assert quiet.exit_code == 0, quiet.output
    assert "trial " not in quiet.stderr and "re-evaluation " not in quiet.stderr
