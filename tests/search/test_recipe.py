"""The study's recipe applied to one network: deterministic, so that trials compare fairly."""

from archspec.search import load_search, recipe


def test_training_is_deterministic_for_a_fair_comparison(write_def):
    from archspec.search.definition.space import Candidate
    from archspec.train.data import load_dataset

    defn = load_search(write_def())
    runs = recipe.Recipe(defn, load_dataset(defn.data, defn.seed), quiet=True)
    spec = Candidate(width=0.5).spec(defn.base_spec, 10)
    assert runs.score(spec, 0) == runs.score(spec, 0)
