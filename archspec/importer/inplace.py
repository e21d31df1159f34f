"""In-place calls as values: later readers of a tensor an in-place call overwrote read the
call instead (NF-Net's `out.mul_(gain)`, whose result the forward drops, then `out * alpha`),
so the traced graph's data flow, which the spec keeps, says what the forward computes."""

from __future__ import annotations

from torch import fx

from archspec.importer.capture import in_place


def read_through(gm: fx.GraphModule) -> None:
    """Rewire `gm.graph` in place: every reader of an in-place call's first argument that
    comes after the call reads the call (the same tensor, overwritten)."""
    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)
    position = {n: i for i, n in enumerate(nodes)}
    for node in nodes:
        if not (in_place(node, modules) and node.args and isinstance(node.args[0], fx.Node)):
            continue
        overwritten = node.args[0]
        for reader in list(overwritten.users):
            if reader is not node and position[reader] > position[node]:
                reader.replace_input_with(overwritten, node)
