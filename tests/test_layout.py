"""The package's layout as rules a change cannot break silently: no import cycle, the stages that
must not know the search don't import it, and Optuna's private API is reached from one package.

Imports are read from the source (module level and inside functions alike; those under
`if TYPE_CHECKING:` are only for the type checker and do not count). Importing a module runs
its packages' `__init__` first, so that counts as importing them too."""

import ast
import re
from pathlib import Path

import networkx as nx
import pytest

from archspec.search.study.optuna_private import PRIVATE_NAMES

PACKAGE = Path(__file__).resolve().parents[1] / "archspec"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside `if TYPE_CHECKING:` blocks."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def _imports(name: str) -> set[str]:
    """The archspec modules `name` imports (a name imported from a package counts as its
    submodule when there is one)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    skip = _type_checking_only(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "archspec"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if base.split(".")[0] != "archspec":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in MODULES else base)
    # importing a.b.c runs the __init__ of a.b first (unless `name` is inside a.b already)
    ancestors = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}
    for module in list(out):
        parts = module.split(".")
        out |= {".".join(parts[:k]) for k in range(2, len(parts))} - ancestors
    return {m for m in out if m in MODULES and m != name}


GRAPH = nx.DiGraph([(m, i) for m in MODULES for i in _imports(m)])


def _is_package_init(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def test_no_import_cycle_inside_archspec():
    # A package's __init__ re-exports its modules' public names; a module importing a name from
    # its own package's __init__ would close a loop through it, so those edges count too.
    cycles = sorted(nx.simple_cycles(GRAPH), key=len)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles[:5])


@pytest.mark.parametrize("stage", ["archspec.export", "archspec.train"])
def test_export_and_train_import_nothing_from_search(stage):
    reached = {
        (m, i)
        for m in MODULES
        if m == stage or m.startswith(stage + ".")
        for i in _imports(m)
        if i == "archspec.search" or i.startswith("archspec.search.")
    }
    assert not reached, f"{stage} imports the search: {sorted(reached)}"


def test_the_train_command_imports_nothing_from_search_for_a_plain_spec():
    # what `archspec train SPEC` loads: the CLI module and everything it reaches eagerly
    reached = nx.descendants(GRAPH, "archspec.train") | {"archspec.train"}
    assert not {m for m in reached if m.startswith("archspec.search")}


PRIVATE = sorted({name for _, name in PRIVATE_NAMES if name.startswith("_")})
PRIVATE_USE = re.compile(
    r"\.(" + "|".join(map(re.escape, PRIVATE)) + r")\b"  # an Optuna object's private attribute
    r"|\boptuna(\.\w+)*\._\w+"  # a private Optuna module or logger
)


def test_only_search_study_names_an_optuna_private_attribute():
    allowed = PACKAGE / "search" / "study"
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in MODULES.values()
        if allowed not in path.parents
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE_USE.search(line.split("#")[0])
    ]
    assert not offenders, "Optuna's private API outside archspec/search/study/:\n" + "\n".join(
        offenders
    )


def test_the_private_use_rule_catches_what_it_should():
    assert PRIVATE_USE.search("storage = study._storage")
    assert PRIVATE_USE.search("from optuna.storages._rdb import models")
    assert not PRIVATE_USE.search("storage = study.storage_of()")
