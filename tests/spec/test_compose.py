"""`extends:` and KEY=VALUE overrides, for specs and search definitions: merged in order, every
error located in the file, or at the override, that wrote the value; cycles and depth bounded."""

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archspec
from archspec.errors import SearchError, SpecError
from archspec.hostile import SPEC  # a small valid spec: 1x8x8 -> 3 classes
from archspec.search import load_search

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def searches(tmp_path):
    """A copy of the shipped digits definition and its base, to extend."""
    (tmp_path / "bases").mkdir()
    shutil.copy(ROOT / "search" / "bases" / "tiny_effnet.yaml", tmp_path / "bases")
    shutil.copy(ROOT / "search" / "digits_compound.yaml", tmp_path / "base.yaml")
    return tmp_path


def test_a_definition_extends_another_and_its_own_keys_win(searches):
    child = searches / "child.yaml"
    child.write_text(
        "extends: base.yaml\nstudy: child\ntraining: {epochs: 2}\nsampler: random\ntrials: 3\n"
    )
    defn = load_search(child)
    base = load_search(searches / "base.yaml")
    assert (defn.study, defn.training.epochs, defn.sampler.name, defn.trials) == (
        "child",
        2,
        "random",
        3,
    )
    # sections merge key by key: the rest of `training:` is the base's
    assert defn.training.batch_size == base.training.batch_size == 64
    assert defn.training.lr == base.training.lr
    assert defn.base_spec.name == "tiny_effnet"  # `base:` relative to the file that wrote it


def test_an_error_points_into_the_file_that_wrote_the_value(searches):
    (searches / "middle.yaml").write_text("extends: base.yaml\ntraining:\n  epochs: many\n")
    child = searches / "child.yaml"
    child.write_text("extends: [middle.yaml]\nstudy: child\n")
    with pytest.raises(SearchError) as info:
        load_search(child)
    assert str(info.value) == (
        f"{searches / 'middle.yaml'}:3:11: training.epochs: input should be a valid integer "
        "(got 'many')"
    )


def test_several_parents_merge_in_order(searches):
    (searches / "fast.yaml").write_text("training: {epochs: 1, lr: 0.01}\n")
    (searches / "slow.yaml").write_text("training: {epochs: 9}\n")
    child = searches / "child.yaml"
    child.write_text("extends: [base.yaml, fast.yaml, slow.yaml]\n")
    defn = load_search(child)
    assert (defn.training.epochs, defn.training.lr) == (9, 0.01)


def test_cycles_missing_files_and_depth_are_located_errors(searches):
    (searches / "a.yaml").write_text("extends: b.yaml\nstudy: a\n")
    (searches / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(
        SpecError,
        match=r"a\.yaml:1:10: extends: 'b\.yaml' extends itself|"
        r"b\.yaml:1:10: extends: 'a\.yaml' extends itself \(a\.yaml -> b\.yaml -> a\.yaml\)",
    ):
        load_search(searches / "a.yaml")
    (searches / "c.yaml").write_text("extends: [nothere.yaml]\n")
    with pytest.raises(SpecError, match=r"c\.yaml:1:11: extends: no file 'nothere\.yaml'"):
        load_search(searches / "c.yaml")
    for i in range(12):
        (searches / f"d{i}.yaml").write_text(f"extends: d{i + 1}.yaml\n")
    (searches / "d12.yaml").write_text("study: deep\n")
    with pytest.raises(SpecError, match=r"extends: deeper than 8 files"):
        load_search(searches / "d0.yaml")
    (searches / "e.yaml").write_text("extends: {file: base.yaml}\n")
    with pytest.raises(SpecError, match=r"e\.yaml:1:10: extends: a file name or a list"):
        load_search(searches / "e.yaml")


def test_a_spec_extends_a_spec(tmp_path):
    (tmp_path / "small.yaml").write_text(SPEC)
    (tmp_path / "wide.yaml").write_text("extends: small.yaml\nname: wide\ninput: {size: 16}\n")
    spec = archspec.load_spec(tmp_path / "wide.yaml")
    assert spec.name == "wide" and spec.input.hw == (16, 16) and spec.input.channels == 1


def test_overrides_set_dotted_keys_with_yaml_values(searches):
    defn = load_search(
        searches / "base.yaml",
        ["training.epochs=3", "sampler.name=random", "trials=5", "space.width=[1.0, 1.2]",
         "training.label_smoothing=0", "data.dataset=shapes", "data.num_samples=640"],
    )  # fmt: skip
    assert (defn.training.epochs, defn.sampler.name, defn.trials) == (3, "random", 5)
    assert (defn.space.width.low, defn.space.width.high, defn.space.width.step) == (1.0, 1.2, None)
    assert defn.data.dataset == "shapes" and defn.training.label_smoothing == 0
    assert defn.overrides == (
        "training.epochs=3", "sampler.name=random", "trials=5", "space.width=[1.0, 1.2]",
        "training.label_smoothing=0", "data.dataset=shapes", "data.num_samples=640",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.epochs=abc", "override training.epochs=abc: training.epochs: input should be "
         "a valid integer (got 'abc')"),
        ("trainin.epochs=3", "override trainin.epochs=3: trainin: unknown key 'trainin'; did you "
         "mean training?"),
        ("training.epoch=3", "override training.epoch=3: training.epoch: unknown key 'epoch'; did "
         "you mean epochs?"),
        ("trials", "override trials: expected KEY=VALUE with a dotted key (training.epochs=3)"),
        ("study.name.x=1", "override study.name.x=1: study.name: is a value ('digits_compound'), "
         "not a section"),
        ("space.width=[1, 2", "override space.width=[1, 2: YAML syntax: this [ is never closed by "
         "a ]"),
    ],
)  # fmt: skip
def test_a_bad_override_names_itself(searches, override, message):
    with pytest.raises((SearchError, SpecError)) as info:
        load_search(searches / "base.yaml", [override])
    assert str(info.value).startswith(message), str(info.value)


def test_spec_overrides_reach_lists_by_index(tmp_path):
    (tmp_path / "small.yaml").write_text(SPEC)
    spec = archspec.load_spec(tmp_path / "small.yaml", ["layers.0.out_channels=8", "input.size=12"])
    assert spec.layers[0].params["out_channels"] == 8 and spec.input.hw == (12, 12)
    with pytest.raises(
        SpecError,
        match=r"override layers\.9\.out_channels=8: layers\.9: the list "
        r"has 5 items",
    ):
        archspec.load_spec(tmp_path / "small.yaml", ["layers.9.out_channels=8"])


def test_the_cli_takes_overrides_and_a_changed_study_names_them(searches, monkeypatch):
    import archspec.cli.search  # noqa: F401 - registers the commands
    from archspec.cli import app

    monkeypatch.chdir(searches)
    runner = CliRunner()
    tiny = ["trials=1", "training.epochs=1", "compound.phi=1", "evaluation.seeds=0",
            "data.limit=400"]  # fmt: skip
    first = runner.invoke(app, ["search", "base.yaml", *tiny, "-q"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["search", "base.yaml", *tiny[:-1], "data.limit=500", "-q"])
    assert again.exit_code == 1
    assert "exists with a different setup (data; changed by the overrides data.limit=500)" in (
        again.output
    )
    scaled = runner.invoke(app, ["scale", "bases/tiny_effnet.yaml", "input.size=16"])
    assert scaled.exit_code == 0 and "size: 16" in scaled.output
