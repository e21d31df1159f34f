"""What the README and the shipped definitions' own comments say about each search in search/
is what the files do: samplers, objectives, data, budget, and how many networks the compound
bands hold."""

import re
from pathlib import Path

import pytest

from archspec.search import load_search
from archspec.search.definition.space import reference_spec
from archspec.search.trial import band_of

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()
SHIPPED = sorted((ROOT / "search").glob("*.yaml"))
SAMPLER_WORDS = {"NSGA-II": "nsga2", "TPE": "tpe", "grid": "grid", "CMA-ES": "cmaes"}
METRIC_WORDS = {"accuracy": "accuracy", "FLOPs": "flops", "latency": "latency_ms",
                "params": "params", "reward": "reward"}  # fmt: skip


def test_every_shipped_definition_is_in_the_readme():
    for path in SHIPPED:
        assert f"search/{path.name}" in README, path.name


@pytest.mark.parametrize("line", [
    x for x in README.splitlines() if re.match(r"archspec search search/\w+\.yaml\s+#", x)
])  # fmt: skip
def test_what_a_readme_command_line_says_of_its_definition(line):
    """`archspec search search/X.yaml  # NSGA-II: accuracy vs FLOPs`: the sampler and the
    objectives named are the file's."""
    name, comment = re.match(r"archspec search (search/\w+\.yaml)\s+#\s*(.*)", line).groups()
    defn = load_search(ROOT / name)
    for word, sampler in SAMPLER_WORDS.items():
        if re.search(rf"\b{re.escape(word)}\b", comment):
            assert defn.sampler.name == sampler, (line, defn.sampler.name)
    if " vs " in comment:
        named = [w.strip() for w in comment.split(":")[-1].split(" vs ")]
        assert [METRIC_WORDS[w] for w in named] == defn.metrics, line


def _classes(defn):
    from archspec.train.data import load_dataset

    return load_dataset(defn.data, defn.seed).num_classes


def _band(defn):
    return band_of(defn, reference_spec(defn.base_spec, _classes(defn)))


@pytest.mark.slow
def test_the_compound_definitions_comments_count_their_band():
    for name in ("shapes_compound", "digits_compound"):
        path = ROOT / "search" / f"{name}.yaml"
        defn = load_search(path)
        (said,) = re.findall(r"\((\d+) of them", path.read_text())
        assert len(_band(defn)) == int(said), name
    digits = load_search(ROOT / "search" / "digits_compound.yaml")
    assert (
        f"fewer than the {digits.trials} trials"
        in (ROOT / "search" / "digits_compound.yaml").read_text()
    )
    assert len(_band(digits)) < digits.trials


def test_the_quickstart_describes_the_shapes_job_as_its_file_sets_it():
    defn = load_search(ROOT / "search" / "shapes_compound.yaml")
    quick = README[README.index("## Quickstart") : README.index("## Writing a spec")]
    assert f"{defn.data.num_samples} 64x64 images" in quick
    assert f"{_classes(defn)} classes" in quick
    size = defn.base_spec.input.hw[0]
    assert f"trained at {size}x{size}" in quick
    assert f"{defn.trials} of the" in quick and "grid" in quick and defn.sampler.name == "grid"
    assert f"the top {defn.evaluation.top_k}" in quick
    assert f"with {defn.evaluation.seeds} fresh seeds" in quick
    assert f"phi = {defn.compound.phi} member" in quick
    assert (
        "runs/shapes_compound.db" in quick
        and defn.storage_url == "sqlite:///runs/shapes_compound.db"
    )


def test_the_readme_s_mnasnet_reward_is_the_file_s():
    defn = load_search(ROOT / "search" / "digits_mnasnet_reward.yaml")
    assert "a MnasNet reward ACC x (LAT/T)^w\n  (`search/digits_mnasnet_reward.yaml`)" in README
    assert defn.metrics == ["reward"] and defn.reward.metric == "latency_ms"
