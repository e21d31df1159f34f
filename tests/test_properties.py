"""Property-based tests (hypothesis): for generated and mutated specs and search definitions,
only archspec's own errors escape, every input finishes within a time bound, and every spec
that validates builds and runs a forward pass with the static output shape. Bounded to keep
the suite fast; benchmarks/fuzz.py runs the same properties (archspec.testing) at scale."""

import os
import random

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archspec.ops import REGISTRY
from archspec.spec.expr import ExprError, evaluate
from archspec.testing import SCALARS, check_search, check_spec, mutated, seed_texts

PROPERTY = settings(
    max_examples=20,
    deadline=None,  # check_spec/check_search bound each input themselves (a hang is a failure)
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TIME_LIMIT_S = 30.0
SPECS = seed_texts("spec")
SEARCHES = seed_texts("search")


@pytest.fixture(autouse=True, scope="module")
def _small_budget():
    # a legal 50,000-node network takes seconds to expand; these properties do not need one
    before = os.environ.get("ARCHSPEC_MAX_NODES")
    os.environ["ARCHSPEC_MAX_NODES"] = "3000"
    yield
    if before is None:
        del os.environ["ARCHSPEC_MAX_NODES"]
    else:
        os.environ["ARCHSPEC_MAX_NODES"] = before


def assert_clean(outcome):
    assert outcome.kind in ("rejected", "accepted"), f"{outcome.kind}: {outcome.detail}"


@pytest.mark.slow
@PROPERTY
@given(st.sampled_from(SPECS), st.randoms(use_true_random=False), st.integers(1, 3))
def test_mutated_specs(seed, rng, steps):
    assert_clean(check_spec(mutated(seed[1], rng, "spec", steps), time_limit_s=TIME_LIMIT_S))


# ---- specs generated from the op registry: each op's own examples, one value changed ---------
SINGLE_INPUT = sorted(name for name, cls in REGISTRY.items() if cls.arity == 1 and cls.examples)


@st.composite
def generated_specs(draw):
    channels = draw(st.sampled_from([1, 3, 4, 8]))
    size = draw(st.sampled_from([1, 2, 5, 8, 16]))
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(SINGLE_INPUT))
        params = dict(draw(st.sampled_from(REGISTRY[op].examples)).params)
        fields = sorted(REGISTRY[op].model_fields)
        if fields and draw(st.booleans()):
            params[draw(st.sampled_from(fields))] = draw(st.sampled_from(SCALARS[:40]))
        layers.append({"op": op, **params})
    if draw(st.booleans()):
        layers.append({"op": "add", "from": ["input", str(len(layers) - 1)]})
    spec = {"name": "g", "input": {"channels": channels, "size": size}, "layers": layers}
    return yaml.safe_dump(spec, sort_keys=False)


@pytest.mark.slow
@PROPERTY
@given(generated_specs())
def test_generated_specs_validate_build_and_run_with_the_static_shape(text):
    assert_clean(check_spec(text, time_limit_s=TIME_LIMIT_S))


@pytest.mark.slow
@settings(PROPERTY, max_examples=8)
@given(st.sampled_from(SEARCHES), st.randoms(use_true_random=False))
def test_mutated_search_definitions(seed, rng):
    assert_clean(check_search(mutated(seed[1], rng, "search", 2), time_limit_s=TIME_LIMIT_S))


# ---- expressions: any tree of the allowed syntax evaluates or raises ExprError, fast ---------
LEAVES = st.sampled_from(["c", "i", "s", "0", "1", "-1", "64", "1e18", "1e-300", "'a'", "True"])
OPERATORS = ["+", "-", "*", "/", "//", "%", "**", "<", "==", "and", "or"]


def expressions():
    return st.recursive(
        LEAVES,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(OPERATORS), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            st.tuples(st.sampled_from(["-", "not "]), inner).map(lambda t: f"({t[0]}{t[1]})"),
            st.tuples(
                st.sampled_from(
                    [
                        "min",
                        "max",
                        "abs",
                        "int",
                        "float",
                        "round",
                        "ceil",
                        "floor",
                        "make_divisible",
                    ]
                ),
                st.lists(inner, min_size=0, max_size=3),
            ).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        ),
        max_leaves=12,
    )


@settings(max_examples=300, deadline=1000, derandomize=True)
@given(expressions())
def test_expressions_evaluate_or_raise_expr_error(text):
    try:
        value = evaluate("${" + text + "}", {"c": 24, "i": 3, "s": "x"})
    except ExprError as exc:
        str(exc)  # the message itself is always formattable
        return
    assert isinstance(value, (bool, int, float, str))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        assert abs(value) <= 10**18


def test_mutations_are_reproducible():
    a = mutated(SPECS[0][1], random.Random(5), "spec", 3)
    b = mutated(SPECS[0][1], random.Random(5), "spec", 3)
    assert a == b
