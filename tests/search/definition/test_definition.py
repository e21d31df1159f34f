"""Search definitions: the shipped ones load; bad ones fail with file:line:col messages."""

import textwrap
from pathlib import Path

import pytest

from archspec.errors import SearchError, SpecSyntaxError
from archspec.search import load_search

ROOT = Path(__file__).resolve().parents[3]
BASES = ROOT / "search" / "bases"
SHIPPED = sorted((ROOT / "search").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_definitions_load(path):
    defn = load_search(path)
    assert defn.base_spec.name
    assert defn.study == path.stem


def test_the_demo_and_the_free_resnet_search_exist():
    names = {p.stem for p in SHIPPED}
    assert {"digits_compound", "digits_free_resnet"} <= names
    assert load_search(ROOT / "search" / "digits_compound.yaml").mode == "compound"
    free = load_search(ROOT / "search" / "digits_free_resnet.yaml")
    assert free.mode == "free" and len(free.objectives) == 2 and free.sampler.name == "nsga2"


def _load(tmp_path: Path, text: str):
    path = tmp_path / "bad.yaml"
    base = BASES / "tiny_effnet.yaml"
    path.write_text(textwrap.dedent(text).lstrip().replace("BASE", str(base)))
    with pytest.raises(SearchError) as info:
        load_search(path)
    return info.value, str(path)


GOOD_HEAD = """
study: bad
base: BASE
mode: free
"""


@pytest.mark.parametrize(
    ("body", "line", "column", "message"),
    [
        (
            "space: {width: [0.5, 1.0]}\nsamplr: tpe\n",
            5,
            1,
            "unknown key 'samplr'; did you mean sampler",
        ),
        (
            "space: {width: [0.5, 1.0]}\nsampler: annealing\n",
            5,
            10,
            "sampler: input should be 'tpe', 'nsga2'",
        ),
        ("space:\n  width: {low: 2.0, high: 1.0}\n", 5, 10, "low (2.0) is above high (1.0)"),
        ("space:\n  kernels: {stage9: [3, 5]}\n", 5, 13, "unknown stage 'stage9'"),
        (
            "space: {width: [0.5, 1.0]}\nobjectives: [accuracy, flops]\npruner: median\n",
            6,
            9,
            "needs a single objective",
        ),
        ("space: {width: [0.5, 1.0]}\nsampler: grid\n", 4, 16, "the grid sampler needs a step"),
        (
            "space: {width: [0.5, 1.0]}\ntraining: {epochs: 0}\n",
            5,
            20,
            "greater than or equal to 1",
        ),
        ("space: {width: [0.5, 1.0]}\ndata: {dataset: mnist}\n", 5, 17, "dataset is one of"),
        ("space: {width: [0.5, 1.0]}\nobjectives: [reward]\n", 5, 13, "needs a `reward:` section"),
        ("", 1, 1, "nothing to search"),
    ],
)
def test_bad_definitions_are_located(tmp_path, body, line, column, message):
    error, file = _load(tmp_path, GOOD_HEAD + body)
    assert any(message in p.message for p in error.problems), error
    problem = next(p for p in error.problems if message in p.message)
    assert (problem.location.file, problem.location.line, problem.location.column) == (
        file,
        line,
        column,
    ), str(problem)


def test_compound_mode_needs_every_knob(tmp_path):
    error, _ = _load(tmp_path, GOOD_HEAD.replace("free", "compound") + "space: {width: [1, 1.2]}\n")
    messages = " ".join(p.message for p in error.problems)
    assert "space.depth" in messages and "space.resolution" in messages


def test_missing_base_file_is_located(tmp_path):
    error, file = _load(
        tmp_path, "study: bad\nbase: nowhere.yaml\nmode: free\nspace: {width: [1, 2]}\n"
    )
    assert error.location.file == file and error.location.line == 2
    assert "no spec file" in error.message


def test_unknown_zoo_base(tmp_path):
    error, _ = _load(tmp_path, "study: bad\nbase: resnet5\nmode: free\nspace: {width: [1, 2]}\n")
    assert "unknown model 'resnet5'" in error.message and error.location.line == 2


def test_yaml_syntax_errors_are_located(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("study: x\nspace: {width: [1, 2}\n")
    with pytest.raises(SpecSyntaxError) as info:
        load_search(path)
    assert info.value.location.line == 2


def test_shorthands_and_defaults(write_def):
    defn = load_search(write_def(sampler="nsga2", objectives=["accuracy", "latency_ms"]))
    assert defn.sampler.name == "nsga2"
    assert defn.directions == ["maximize", "minimize"]
    assert defn.storage_url == "sqlite:///runs/tiny.db"
    assert defn.export_path == Path("runs/tiny_best.yaml")


def test_shipped_definitions_by_name():
    assert load_search("digits_compound").study == "digits_compound"
    with pytest.raises(SearchError, match="unknown search definition 'digits_compund'; did you"):
        load_search("digits_compund")
