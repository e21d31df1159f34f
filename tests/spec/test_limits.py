"""The expansion budget and recursion: refused before expansion, located, with the figure."""

import pytest

import archspec
from archspec.errors import LimitError, SpecValidationError

HEAD = "name: t\ninput: {channels: 3, size: 8}\n"


def nested_blocks(levels: int, repeat: int) -> str:
    blocks = "blocks:\n  b0: {layers: [{op: relu}]}\n"
    blocks += "".join(
        f"  b{i}: {{layers: [{{block: b{i - 1}, repeat: {repeat}}}]}}\n" for i in range(1, levels)
    )
    return (
        HEAD
        + blocks
        + f"layers:\n  - {{op: relu}}\n  - {{block: b{levels - 1}, repeat: {repeat}}}\n"
    )


def error(tmp_path, text, kind=LimitError):
    path = tmp_path / "big.yaml"
    path.write_text(text)
    with pytest.raises(kind) as info:
        archspec.build_graph(path)
    return path, info.value


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            "  - {layers: [{op: relu}], repeat: '${10**12}'}\n",
            "this spec expands to 1,000,000,000,000 nodes (1,000,000,000,000 from layers.0)",
        ),
        (
            "  - {layers: [{op: relu}, {op: relu}], repeat: 1048576}\n",
            "this spec expands to 2,097,152 nodes (2,097,152 from layers.0)",
        ),
    ],
)
def test_repeat_over_the_node_budget(tmp_path, layers, message):
    path, exc = error(tmp_path, HEAD + "layers:\n" + layers)
    assert str(exc) == (f"{path}:4:5: {message}; the limit is 50,000, set by ARCHSPEC_MAX_NODES")


def test_nested_blocks_are_the_alias_bomb_and_are_refused(tmp_path):
    path, exc = error(tmp_path, nested_blocks(6, 10))
    assert str(exc) == (
        f"{path}:12:5: this spec expands to 1,000,001 nodes (1,000,000 from layers.1); "
        "the limit is 50,000, set by ARCHSPEC_MAX_NODES"
    )


def test_the_limit_is_raised_by_its_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHSPEC_MAX_NODES", "2000000")
    graph = archspec.build_graph(nested_blocks(4, 10))
    assert len(graph) == 1 + 10**4  # relu, b3 x 10 x 10 x 10 x 10


def test_parameters_and_activation_memory_are_bounded_before_allocation(tmp_path):
    path, exc = error(
        tmp_path,
        HEAD + "layers:\n  - {op: flatten}\n  - {op: linear, out_features: 1048576}\n"
        "  - {op: linear, name: huge, out_features: 1048576}\n",
    )
    assert str(exc) == (
        f"{path}:6:5: this network has 1,099,715,051,520 parameters (the largest node: huge); "
        "the limit is 4,000,000,000, set by ARCHSPEC_MAX_PARAMS"
    )
    path, exc = error(
        tmp_path,
        "name: t\ninput: {channels: 3, size: 1048576}\n"
        "layers:\n  - {op: conv2d, out_channels: 64, kernel_size: 3, padding: 1}\n",
    )
    # (3 + 64) x 2**20 x 2**20 float32 values
    assert str(exc) == (
        f"{path}:4:5: a forward pass at batch 1 keeps 294,669,116,243,968 bytes of activations "
        "(the largest node: 0); the limit is 34,359,738,368, set by ARCHSPEC_MAX_ACTIVATION_BYTES"
    )


def test_a_block_that_uses_itself(tmp_path):
    path, exc = error(
        tmp_path,
        HEAD + "blocks:\n  a: {layers: [{op: relu}, {block: a}]}\nlayers:\n  - {block: a}\n",
        SpecValidationError,
    )
    assert str(exc) == f"{path}:4:36: block 'a' uses itself"


def test_blocks_that_use_each_other(tmp_path):
    path, exc = error(
        tmp_path,
        HEAD + "blocks:\n  a: {layers: [{op: relu}, {block: b}]}\n  b: {layers: [{block: a}]}\n"
        "layers:\n  - {block: a}\n",
        SpecValidationError,
    )
    assert str(exc) == f"{path}:5:24: block 'a' uses itself (a -> b -> a)"


def test_blocks_nested_too_deep(tmp_path):
    blocks = "blocks:\n  b0: {layers: [{op: relu}]}\n"
    blocks += "".join(f"  b{i}: {{layers: [{{block: b{i - 1}}}]}}\n" for i in range(1, 100))
    path, exc = error(tmp_path, HEAD + blocks + "layers:\n  - {block: b99}\n", SpecValidationError)
    assert str(exc) == f"{path}:72:18: blocks and groups nest more than 32 levels deep"


def test_a_long_chain_of_switched_off_items(tmp_path):
    chain = "".join(
        f"  - {{op: relu, name: s{i}, when: false, from: s{i - 1}}}\n" for i in range(1, 1200)
    )
    text = HEAD + "layers:\n  - {op: relu, name: s0}\n" + chain + "  - {op: tanh}\n"
    graph = archspec.build_graph(text)
    assert len(graph) == 2


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "name: t\nlayers: [1, 2\n\n\nx: 1\n",
            (2, 9),
            "this [ is never closed by a ] (expected ',' or ']', but got ':' at line 5)",
        ),
        (
            "name: t\nlayers:\n  - {op: relu\n  - {op: tanh}\n",
            (3, 5),
            "this { is never closed by a } (expected ',' or '}', but got '{' at line 4)",
        ),
        ("name: 't\nx: 1\n", (1, 7), "this ' is never closed by a ' (found unexpected end"),
    ],
)
def test_an_unclosed_bracket_is_reported_at_the_bracket(text, where, message):
    from archspec.errors import SpecSyntaxError

    with pytest.raises(SpecSyntaxError) as info:
        archspec.load_spec(text)
    assert (info.value.line, info.value.column) == where
    assert info.value.message.startswith(f"YAML syntax: {message}")
