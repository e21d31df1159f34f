"""Language rules that specs rely on: naming, skipped items, derived defaults, indices."""

import archspec

HEAD = "name: t\ninput: {channels: 4, size: 8}\n"


def test_unnamed_items_are_numbered_like_sequential_skipping_switched_off_ones():
    graph = archspec.build_graph(
        HEAD
        + """\
layers:
  - {op: conv2d, kernel_size: 1, when: false}
  - {op: conv2d, kernel_size: 1}
  - {op: batchnorm}
"""
    )
    assert list(graph.nodes) == ["0", "1"]
    assert graph["0"].op.op == "conv2d"


def test_skipped_named_item_is_its_input():
    graph = archspec.build_graph(
        HEAD
        + """\
layers:
  - {op: conv2d, name: a, kernel_size: 1}
  - {op: conv2d, name: proj, kernel_size: 1, when: false}
  - {op: add, name: out, from: [a, proj]}
"""
    )
    assert graph["out"].inputs == ("a", "a")


def test_block_default_derived_from_the_block_input():
    graph = archspec.build_graph(
        HEAD
        + """\
blocks:
  se:
    params: {squeeze: {type: int, default: "${in_channels // 2}"}, expand: {type: int, default: 4}}
    layers:
      - {op: conv2d, name: wide, out_channels: "${in_channels * expand}", kernel_size: 1}
      - {op: squeeze_excitation, name: gate, squeeze_channels: $squeeze}
layers:
  - {block: se, name: b}
"""
    )
    assert graph["b.wide"].shape.channels == 16
    assert graph["b.gate"].op.squeeze_channels == 2  # half the block input, not of 16


def test_index_and_depth_index_in_stages_and_groups():
    graph = archspec.build_graph(
        HEAD
        + """\
blocks:
  unit:
    params: {}
    layers:
      - layers:   # a plain group inside the block inherits the block's index
          - {op: dropout, name: d, p: "${0.1 * index + 0.01 * depth_index}"}
layers:
  - {block: unit, name: s1, repeat: 2}
  - {block: unit, name: s2, repeat: 3}
"""
    )
    p = {n: graph[n].op.p for n in graph.nodes}
    assert p["s1.0.0.d"] == 0.0
    assert p["s1.1.0.d"] == 0.1 + 0.01
    assert p["s2.0.0.d"] == 0.02
    assert round(p["s2.2.0.d"], 6) == 0.24


def test_depth_total_counts_all_stage_repeats():
    graph = archspec.build_graph(
        HEAD
        + """\
layers:
  - {layers: [{op: dropout, name: d, p: "${depth_index / depth_total}"}], name: s, repeat: 4}
"""
    )
    assert [graph[f"s.{i}.d"].op.p for i in range(4)] == [0.0, 0.25, 0.5, 0.75]
