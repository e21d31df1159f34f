"""Parts of a split or chunk, read as `from: name.i`: inside repeated blocks, and the mistakes."""

import pytest

import archspec
from archspec.errors import GraphError

HEAD = "name: parts\ninput: {channels: 8, size: 4}\nlayers:\n"


def _error(layers: str) -> GraphError:
    with pytest.raises(GraphError) as info:
        archspec.build_graph(HEAD + layers)
    return info.value


def test_parts_inside_a_repeated_block():
    text = """
name: stage
input: {channels: 8, size: 4}
blocks:
  unit:
    layers:
      - {op: chunk, name: halves, chunks: 2}
      - {op: conv2d, name: conv, from: halves.1, kernel_size: 3, padding: 1}
      - {op: concat, from: [halves.0, conv]}
      - {op: channel_shuffle, groups: 2}
layers:
  - {block: unit, name: stage, repeat: 3}
"""
    graph = archspec.build_graph(text)
    assert graph["stage.2.halves.1"].op.op == "narrow"
    assert graph["stage.2.conv"].inputs == ("stage.2.halves.1",)
    assert graph.shape("stage.2.halves.0").dims == (4, 4, 4)
    assert archspec.analyze(text).params == 3 * (4 * 4 * 9 + 4)


def test_a_part_that_does_not_exist():
    error = _error(
        "  - {op: split, name: thirds, sizes: [2, 2, 4]}\n"
        "  - {op: relu, from: thirds.3}\n"
        "  - {op: concat, from: [thirds.0, thirds.1, thirds.2]}\n"
    )
    assert error.line == 5
    assert "from: thirds.3: split makes 3 parts (0 to 2)" in str(error)


def test_a_part_of_an_op_with_one_output():
    error = _error("  - {op: conv2d, name: conv, kernel_size: 1}\n  - {op: relu, from: conv.1}\n")
    assert error.line == 5
    assert "'conv' is a conv2d with one output; `.1` reads a part of a split or chunk" in str(error)


def test_a_split_read_whole():
    error = _error("  - {op: chunk, name: halves, chunks: 2}\n  - {op: relu}\n")
    assert error.line == 5
    assert "node 1 reads the chunk halves whole; read its parts as halves.0, halves.1" in str(error)


def test_sizes_that_do_not_add_up():
    error = _error("  - {op: split, name: s, sizes: [3, 3]}\n  - {op: relu, from: s.0}\n")
    assert error.line == 4
    assert "split sizes [3, 3] add up to 6, not to the input's 8 channels" in str(error)
