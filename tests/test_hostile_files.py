"""Hypothesis over the files archspec reads from outside (archspec/hostile.py): mutated bundles,
image files and study journals are used or refused with an archspec error, in time. Bounded
for CI; benchmarks/fuzz_files.py runs the same property for 10,000 inputs."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archspec.hostile import (
    check,
    mutate_bytes,
    mutated_bundle,
    seed_bundle,
    seed_image,
    seed_journal,
)

BOUNDED = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seeds")
    return {
        "bundle": seed_bundle(folder / "b"),
        "image": seed_image(),
        "journal": seed_journal(folder),
    }


def test_the_seeds_themselves_are_used(seeds, tmp_path):
    assert check("bundle", seeds["bundle"]).kind == "accepted"
    for kind, name in (("image", "x.png"), ("journal", "s.log")):
        path = tmp_path / name
        path.write_bytes(seeds[kind])
        assert check(kind, path).kind == "accepted", check(kind, path)


@BOUNDED
@given(seed=st.integers(0, 2**32))
def test_a_mutated_bundle_is_used_or_refused_cleanly(seeds, tmp_path_factory, seed):
    subject = mutated_bundle(
        seeds["bundle"], tmp_path_factory.mktemp("m") / "b", random.Random(seed)
    )
    outcome = check("bundle", subject, time_limit_s=20)
    assert outcome.ok, outcome


@BOUNDED
@given(seed=st.integers(0, 2**32), kind=st.sampled_from(["image", "journal"]))
def test_a_damaged_image_or_journal_is_used_or_refused_cleanly(seeds, tmp_path_factory, seed, kind):
    rng = random.Random(seed)
    data = seeds[kind]
    for _ in range(rng.randint(1, 3)):
        data = mutate_bytes(data, rng)
    subject = tmp_path_factory.mktemp("m") / ("x.png" if kind == "image" else "s.log")
    subject.write_bytes(data)
    outcome = check(kind, subject, time_limit_s=20)
    assert outcome.ok, outcome
