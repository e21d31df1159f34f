"""The expansion budget: how big a spec may grow (nodes, repeats, parameters, activation memory)
and the checks that hold it to that before anything is expanded or allocated.

Blocks instantiate other blocks, so a few lines of YAML can describe a billion nodes (the
alias bomb the YAML loader refuses, rebuilt from blocks). The node count is estimated from the
spec itself, multiplying repeats through blocks, before expansion; parameters and activation
memory are summed from the static shapes before any tensor exists. Each limit can be raised
with an environment variable, named in the error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from archspec.errors import LimitError, Problem, SpecValidationError
from archspec.spec.expr import ExprError, evaluate, is_expression
from archspec.spec.model import Item, Spec
from archspec.spec.yamlsource import PathKey


@dataclass(frozen=True)
class Limit:
    """One bound: its value (the environment variable `env` overrides `default`) and unit."""

    env: str
    default: int
    unit: str

    @property
    def value(self) -> int:
        raw = os.environ.get(self.env, "")
        return int(raw) if raw.isdigit() else self.default

    def check(self, amount: int, what: str, location: Any = None) -> None:
        """LimitError when `amount` is over the limit: `what` reads "this spec expands to"."""
        if amount > self.value:
            raise self.error(f"{what} {amount:,} {self.unit}", location)

    def error(self, what: str, location: Any = None) -> LimitError:
        return LimitError(f"{what}; the limit is {self.value:,}, set by {self.env}", location)


MAX_NODES = Limit("ARCHSPEC_MAX_NODES", 50_000, "nodes")
MAX_PARAMS = Limit("ARCHSPEC_MAX_PARAMS", 4_000_000_000, "parameters")
# float32 outputs of every node at batch 1, what a forward pass keeps for backward
MAX_ACTIVATION_BYTES = Limit("ARCHSPEC_MAX_ACTIVATION_BYTES", 32 << 30, "bytes of activations")


MAX_NESTING = 32  # blocks and groups inside one another; ResNet needs 3


def check_structure(spec: Spec) -> None:
    """Located SpecValidationErrors for blocks that use themselves (directly or through
    others) and for nesting deeper than MAX_NESTING: both would make expansion recurse."""
    _Walk(spec, {}).run()


def check_nodes(spec: Spec, options: Mapping[str, Any] | None = None) -> None:
    """LimitError, before expansion, when the spec would expand beyond MAX_NODES; located at
    the top-level item that contributes most."""
    walk = _Walk(spec, options or {})
    total = walk.run()
    if total > MAX_NODES.value:
        index = max(range(len(walk.top)), key=walk.top.__getitem__)
        what = f"this spec expands to {total:,} nodes ({walk.top[index]:,} from layers.{index})"
        raise MAX_NODES.error(what, spec.locate(("layers", index)))


def check_size(
    params: int, activation_elements: int, largest: tuple[str, Any], location: Any = None
) -> None:
    """LimitError when the network, from its static shapes, has too many parameters or keeps too
    much activation memory (float32, batch 1): checked before any tensor is allocated.
    `largest` is the (name, location) of the node the error points at."""
    name, where = largest
    if params > MAX_PARAMS.value:
        raise MAX_PARAMS.error(
            f"this network has {params:,} parameters (the largest node: {name})", where
        )
    if 4 * activation_elements > MAX_ACTIVATION_BYTES.value:
        raise MAX_ACTIVATION_BYTES.error(
            f"a forward pass at batch 1 keeps {4 * activation_elements:,} bytes of activations "
            f"(the largest node: {name})",
            where,
        )


class _Walk:
    """One walk over the spec's item tree with blocks inlined: sizes, cycles and depth. A block
    body's size depends only on the block and its literal arguments, so it is computed once per
    such pair, which keeps the walk linear in the spec's size."""

    def __init__(self, spec: Spec, options: Mapping[str, Any]):
        self.spec = spec
        self.env = {name: pdef.default for name, pdef in spec.options.items()}
        self.env |= dict(options) | {"index": 0, "depth_index": 0}
        self.sizes: dict[tuple[str, str], int] = {}
        self.problems: list[Problem] = []
        self.top: list[int] = []  # the size of each top-level item

    def run(self) -> int:
        for i, item in enumerate(self.spec.layers):
            self.top.append(self.item(item, ("layers", i), self.env, (), 1))
        if self.problems:
            raise SpecValidationError(self.problems)
        return sum(self.top)

    def items(
        self, items: list[Item], base: PathKey, scope: dict, trail: tuple[str, ...], depth: int
    ) -> int:
        return sum(
            self.item(item, base + (i,), scope, trail, depth) for i, item in enumerate(items)
        )

    def item(
        self, item: Item, path: PathKey, scope: dict, trail: tuple[str, ...], depth: int
    ) -> int:
        if item.op is not None:
            return 1
        if depth > MAX_NESTING:
            self.fail(path, f"blocks and groups nest more than {MAX_NESTING} levels deep")
            return 0
        repeat = _count(item.repeat, scope)
        if item.layers is not None:
            return repeat * self.items(item.layers, path + ("layers",), scope, trail, depth + 1)
        name = item.block or ""
        block = self.spec.blocks.get(name)
        if block is None:
            return 0  # unknown block: reported by the expansion, with suggestions
        if name in trail:
            loop = " -> ".join(trail[trail.index(name) :] + (name,))
            message = f"block {name!r} uses itself" + (f" ({loop})" if len(trail) > 1 else "")
            self.fail(path + ("block",), message)
            return 0
        literal = {k: v for k, v in item.args.items() if not is_expression(v)}
        key = (name, repr(sorted(literal.items())))
        if key not in self.sizes:
            inner = dict(self.env)
            inner |= {k: p.default for k, p in block.params.items() if not is_expression(p.default)}
            inner |= literal
            base = ("blocks", name, "layers")
            self.sizes[key] = self.items(block.layers, base, inner, trail + (name,), depth + 1)
        return repeat * self.sizes[key]

    def fail(self, path: PathKey, message: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(Problem(self.spec.locate(path), message))


def _count(repeat: Any, scope: dict[str, Any]) -> int:
    if repeat is None:
        return 1
    if is_expression(repeat):
        try:
            repeat = evaluate(repeat, scope)
        except ExprError:
            return 1
    return repeat if isinstance(repeat, int) and not isinstance(repeat, bool) and repeat > 0 else 1
