"""Shapes inferred from the spec alone equal the shapes of a real forward pass, for every zoo
spec at a small, non-square input (so a swapped height and width cannot go unnoticed)."""

import pytest
import torch
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from archspec.compile import compile_graph, node_names
from archspec.errors import GraphError
from archspec.graph import build_graph
from archspec.spec import load_spec
from archspec.zoo import list_specs, spec_path


def small_graph(name: str):
    """The graph at the smallest input (from 32 pixels high, in steps of size_multiple) at
    which the spec builds, `step` pixels wider than high."""
    spec = load_spec(spec_path(name))
    step = max(spec.input.size_multiple, 8)
    first = max(32, spec.input.size_multiple)
    for height in range(first, max(spec.input.hw) + 1, spec.input.size_multiple):
        resized = spec.model_copy(
            update={"input": spec.input.model_copy(update={"size": [height, height + step]})}
        )
        try:
            return build_graph(resized)
        except GraphError:
            continue
    raise AssertionError(f"{name} builds at no non-square input from {first} pixels up")


# maxvit_t builds from 224 pixels only (7x7 partitions at every stage): 224x448 at batch 2
SLOW = {"maxvit_t"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in list_specs()]
)
def test_static_shapes_equal_real_shapes(name):
    graph = small_graph(name)
    with torch.device("meta"):
        module = compile_graph(graph)
    module = module.to_empty(device="cpu").eval()  # real tensors without the weight init
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor.zero_()  # uninitialized memory may hold slow denormals
    shape = graph.input_shape
    ShapeProp(module).propagate(torch.zeros(2, *shape.dims))
    real = {
        n.name: n.meta["tensor_meta"].shape
        for n in module.graph.nodes
        if isinstance(n.meta.get("tensor_meta"), TensorMetadata)
    }
    names = node_names(module)
    static = list(graph.nodes)
    assert set(names) == set(static)
    mismatches = {
        node: (tuple(real[names[node]]), graph[node].shape.dims)
        for node in static
        if tuple(real[names[node]]) != (2, *graph[node].shape.dims)
    }
    assert not mismatches, f"at input {shape}: {mismatches}"
