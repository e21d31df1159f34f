"""What archspec promises for any input, as checkable properties, and the mutations that try to
break them: used by the hypothesis tests (tests/test_properties.py) and benchmarks/fuzz.py.

The promise: a spec or a search definition is either refused with an ArchspecError or accepted;
nothing else escapes, within a time bound. An accepted spec builds, and its forward pass gives
the statically inferred shape; scaling it gives a valid spec or a ScaleError.
"""

from __future__ import annotations

import copy
import random
import signal
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from archspec.errors import ArchspecError, LimitError, ScaleError

TIME_LIMIT_S = 60.0  # one input: load, validate, lint, scale, build and run (a hang beyond)
FORWARD_MAX_PARAMS = 3_000_000  # larger accepted specs are validated, not run
FORWARD_MAX_FLOPS = 300_000_000
DEEP_MAX_NODES = 1_000  # lint and scale are checked on accepted specs up to this size

ROOT = Path(__file__).resolve().parent.parent


class Hang(BaseException):
    """An input ran past the time limit (a BaseException: no `except Exception` swallows it)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Hang in the main thread after `seconds` (SIGALRM; a no-op where there is none)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"over {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class Outcome:
    """`rejected` (an ArchspecError), `accepted`, `internal` (anything else: a bug) or `hang`;
    `ran` when an accepted spec was also built and run."""

    kind: str
    detail: str = ""
    seconds: float = 0.0
    ran: bool = False

    @property
    def ok(self) -> bool:
        return self.kind in ("rejected", "accepted")


def internal_error(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = next(
        (
            f"{Path(f.filename).name}:{f.lineno}"
            for f in reversed(frames)
            if "archspec" in f.filename
        ),
        "?",
    )
    return f"{type(exc).__name__} at {where}: {str(exc)[:200]}"


def check_spec(text: str, *, run: bool = True, time_limit_s: float = TIME_LIMIT_S) -> Outcome:
    """The spec property for one YAML text (see the module docstring)."""
    return outcome_of(lambda: _spec_property(text, run), time_limit_s)


def outcome_of(check: Callable[[], object], time_limit_s: float) -> Outcome:
    """Run `check` within the time bound: `rejected` on an ArchspecError, `hang` past the
    bound, `internal` on anything else; `accepted` otherwise (`ran` when it returned True)."""
    start = time.perf_counter()
    try:
        with time_limit(time_limit_s):
            ran = check() is True
    except ArchspecError as exc:
        return Outcome("rejected", str(exc).splitlines()[0], time.perf_counter() - start)
    except Hang as exc:
        return Outcome("hang", str(exc), time.perf_counter() - start)
    except Exception as exc:
        return Outcome("internal", internal_error(exc), time.perf_counter() - start)
    return Outcome("accepted", "", time.perf_counter() - start, ran)


def _spec_property(text: str, run: bool) -> bool:
    from archspec.analysis import analyze, lint
    from archspec.spec import load_spec

    spec = load_spec(text)
    report = analyze(spec)  # validates: expansion, shapes, the budget
    if len(report.nodes) <= DEEP_MAX_NODES:  # lint and scale rebuild the graph (lint twice)
        lint(spec)
        _scale_property(spec, text)
    if not run or report.params > FORWARD_MAX_PARAMS or report.flops > FORWARD_MAX_FLOPS:
        return False
    import torch

    from archspec.compile import build

    model = build(spec).eval()
    x = torch.randn(1, *report.input_shape.dims)
    with torch.no_grad():
        out = model(x)
    got = [tuple(t.shape[1:]) for t in (out if isinstance(out, tuple) else (out,))]
    want = [tuple(shape.dims) for shape in report.output_shapes]
    if got != want:
        raise AssertionError(f"forward gave {got}; static shapes {want}")
    return True


SCALINGS = [(0.25, 1.0, 1.0), (0.3, 1.0, 1.0), (0.5, 0.5, 0.75), (1.7, 2.0, 1.0), (1.1, 1.3, 1.5)]


def _scale_property(spec: Any, text: str) -> None:
    """Scaling an accepted spec gives a valid spec or a ScaleError, never an invalid spec."""
    from archspec.graph import build_graph
    from archspec.scaling.rewrite import scale

    width, depth, resolution = SCALINGS[zlib.crc32(text.encode()) % len(SCALINGS)]
    try:
        scaled = scale(spec, width=width, depth=depth, resolution=resolution)
    except ScaleError:
        return
    try:
        build_graph(scaled)
    except LimitError:
        return  # a bigger network over the budget: refused as such, not invalid
    except ArchspecError as exc:
        raise AssertionError(
            f"scale(width={width}, depth={depth}, resolution={resolution}) wrote an invalid "
            f"spec: {exc}"
        ) from exc


def check_search(text: str, *, time_limit_s: float = TIME_LIMIT_S) -> Outcome:
    """The search-definition property: refused at load, or every step before training runs
    (dataset, device, sampler, a few proposed candidates scaled and analysed)."""

    def check() -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "search.yaml"
            path.write_text(text)
            (Path(folder) / "bases").symlink_to(ROOT / "search" / "bases")
            _search_property(path)

    return outcome_of(check, time_limit_s)


def _search_property(path: Path) -> None:
    import optuna

    from archspec.search import load_search
    from archspec.search.definition.samplers import make_pruner, make_sampler
    from archspec.search.definition.space import suggest
    from archspec.search.trial import TrialRunner, effective_record, network
    from archspec.train.data import load_dataset

    defn = load_search(path)
    dataset = load_dataset(defn.data, defn.seed)
    runner = TrialRunner(defn, dataset, seed=defn.seed, quiet=True)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        directions=defn.directions,
        sampler=make_sampler(defn, defn.seed),
        pruner=make_pruner(defn),
    )
    for _ in range(2):  # what a trial does before it trains
        trial = study.ask()
        candidate = suggest(trial, defn)
        try:
            spec = network(defn, runner.base, candidate, defn.compound.flops_ratio)
            effective_record(runner.base, spec)
        except ArchspecError:
            pass  # an invalid candidate is a trial result, not a crash
        study.tell(trial, [0.0] * len(defn.directions))


# --- mutations ---------------------------------------------------------------------------------

NAMES = [
    "class", "None", "True", "def", "lambda", "training", "meta", "_forward_hooks", "forward",
    "_modules", "cuda", "to", "graph", "code", "input", "x", "layer1", "block1-0", "a.b", "1a",
    "é", "", "_", "__init__", "state_dict", "self", "torch", "F", "a" * 70,
]  # fmt: skip
EXPRESSIONS = [
    "${10**12}", "${'a' < 1}", "${-'a'}", "${make_divisible(8, 0)}", "${(10.0**64)**64}",
    "${((((9**64)**64)**64)**64)**64}", "${in_channels}", "${in_channels * 4}", "${index}",
    "${depth_total}", "${depth_index / depth_total}", "$out_channels", "$nope", "${1/0}",
    "${2**62}", "${'x' * 3}", "${max(1, in_channels // 0)}", "${ceil(1e30)}", "${",
    "${index if index else 'a'}", "${float('nan')}", "${-1}", "${0}", "${1.5}", "$stride",
]  # fmt: skip
SCALARS: list[Any] = [
    0, 1, 2, 3, 4, 7, 8, 16, 31, 32, 64, 1000, 1024, 65536, 1 << 20, (1 << 20) + 1, 10**15,
    -1, -8, 0.0, 0.5, -0.5, 1e-9, 1e-300, 1e300, 1.5, 16.0, 16.5, True, False, None, "",
    "same", "valid", "depthwise", "reflect", "circular", "replicate", "zeros", "tokens",
    "channels", "CHW", "HWC", "relu", "tanh", "row", "batch", "auto", "cpu", "cuda", [], [1],
    [3, 3], [1, 2, 3], {}, {"a": 1}, "x" * 300,
]  # fmt: skip
SEARCH_SCALARS: list[Any] = [
    "torchvision:NotADataset", "torchvision:MNIST", "imagefolder:/nonexistent", "synthetic",
    "digits", "cuda", "cuda:3", "mps", "notaurl", "bogus://x", "sqlite:////nonexistent/x.db",
    "grid", "cmaes", "random", "nsga2", "tpe", "hyperband", "median", 1e-300, 1e-6, 0.001,
    0.01, 1, 2, 5, 9, 11, 100_000, 2**32, "accuracy", "flops", "params", "latency_ms",
    "reward", "compound", "free", "layer1", "stage2", [3, 5], [1], [2], [31],
]  # fmt: skip


def seed_texts(kind: str = "spec") -> list[tuple[str, str]]:
    """(name, YAML text) of the shipped specs and bases, or of the shipped search definitions."""
    if kind == "spec":
        paths = sorted((ROOT / "specs").glob("*.yaml")) + sorted(
            (ROOT / "search" / "bases").glob("*.yaml")
        )
    else:
        paths = sorted((ROOT / "search").glob("*.yaml"))
    return [(p.stem, p.read_text()) for p in paths]


def _places(data: Any, path: tuple = ()) -> list[tuple]:
    """Every path in a YAML tree (dict keys and list indexes)."""
    found = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _places(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _places(value, path + (i,))
    return found


def _get(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def _lists_of_items(data: Any) -> list[list]:
    return [
        v
        for p in _places(data)
        if isinstance(v := _get(data, p), list) and v and all(isinstance(i, dict) for i in v)
    ]


def mutate(data: Any, rng: random.Random, kind: str = "spec") -> Any:
    """One random structural or value mutation of a parsed YAML tree (a new tree)."""
    data = copy.deepcopy(data)
    places = _places(data)
    pool = SCALARS + (SEARCH_SCALARS if kind == "search" else EXPRESSIONS + NAMES)
    choice = rng.randrange(12)
    path = rng.choice(places)
    if not path:
        return data
    parent, key = _get(data, path[:-1]), path[-1]
    if choice <= 3:  # a leaf or subtree replaced by an interesting value
        parent[key] = copy.deepcopy(rng.choice(pool))
    elif choice == 4:  # a key or an item removed
        del parent[key]
    elif choice == 5 and isinstance(parent, list):  # an item duplicated
        parent.insert(key, copy.deepcopy(parent[key]))
    elif choice == 6 and isinstance(parent, dict):  # a key added next to this one
        parent[rng.choice(["repeat", "from", "when", "name", "padding", "groups", "step",
                           "limit", "device", "storage", "dataset", "kernel_size", "stride",
                           "padding_mode", "out_channels", "first", "args", "op"])] = (
            copy.deepcopy(rng.choice(pool))
        )  # fmt: skip
    elif choice == 7 and kind == "spec":
        _insert_item(data, rng)
    elif choice == 8 and kind == "spec":
        _structural(data, rng)
    elif (
        choice == 9 and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool)
    ):  # a number nudged
        parent[key] = parent[key] * rng.choice([-1, 0, 2, 10, 0.5, 1e-6, 1e6]) + rng.choice(
            [0, 1, -1]
        )
    elif choice == 10 and isinstance(parent, list) and len(parent) > 1:  # two items swapped
        other = rng.randrange(len(parent))
        parent[key], parent[other] = parent[other], parent[key]
    elif isinstance(parent[key], str):  # a string renamed
        parent[key] = rng.choice(NAMES + EXPRESSIONS + SEARCH_SCALARS)
    return data


def _insert_item(data: Any, rng: random.Random) -> None:
    from archspec.ops import REGISTRY

    lists = _lists_of_items(data)
    if not lists:
        return
    target = rng.choice(lists)
    op = rng.choice(sorted(REGISTRY))
    item: dict[str, Any] = {"op": op}
    for field in REGISTRY[op].model_fields:
        if rng.random() < 0.5:
            item[field] = copy.deepcopy(rng.choice(SCALARS[:24] + EXPRESSIONS[6:12]))
    target.insert(rng.randrange(len(target) + 1), item)


def _structural(data: Any, rng: random.Random) -> None:
    """The shapes that once recursed or expanded without bound."""
    if not isinstance(data, dict):
        return
    blocks = data.setdefault("blocks", {}) if isinstance(data.get("blocks", {}), dict) else {}
    layers = data.get("layers")
    if not isinstance(layers, list):
        return
    which = rng.randrange(4)
    if which == 0 and blocks:  # a block that uses itself
        name = rng.choice(sorted(blocks))
        if isinstance(blocks[name], dict) and isinstance(blocks[name].get("layers"), list):
            blocks[name]["layers"].append({"block": name})
    elif which == 1:  # nested blocks, each repeating the one below (the alias bomb, as blocks)
        depth, repeat = rng.randint(2, 8), rng.choice([2, 10, 100])
        blocks["b0"] = {"layers": [{"op": "relu"}]}
        for i in range(1, depth):
            blocks[f"b{i}"] = {"layers": [{"block": f"b{i - 1}", "repeat": repeat}]}
        layers.insert(0, {"block": f"b{depth - 1}", "repeat": repeat})
    elif which == 2:  # a long chain of switched-off items, each from the previous one
        count = rng.choice([10, 300, 1200])
        chain = [{"op": "relu", "name": "s0", "when": False}]
        chain += [{"op": "relu", "name": f"s{i}", "when": False, "from": f"s{i - 1}"}
                  for i in range(1, count)]  # fmt: skip
        layers[1:1] = chain
    else:  # a huge repeat
        layers.insert(1, {"layers": [{"op": "relu"}], "repeat": rng.choice([1 << 20, 10**6])})


def mutate_text(text: str, rng: random.Random) -> str:
    """A character-level mutation: brackets, quotes, colons, truncation."""
    if not text:
        return text
    at = rng.randrange(len(text))
    how = rng.randrange(4)
    if how == 0:
        return (
            text[:at]
            + rng.choice(["[", "{", "]", "}", '"', "'", ":", "- ", "\t", "&a", "*a"])
            + text[at:]
        )
    if how == 1:
        return text[:at] + text[at + 1 :]
    if how == 2:
        return text[:at]
    return text[:at] + "\n" + text[at:]


def mutated(seed: str, rng: random.Random, kind: str = "spec", steps: int = 1) -> str:
    """The seed text after `steps` mutations (mostly structural, sometimes textual)."""
    if rng.random() < 0.1:
        return mutate_text(seed, rng)
    data = yaml.safe_load(seed)
    for _ in range(steps):
        data = mutate(data, rng, kind)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
