"""What a command may name, resolved once for export, train, evaluate and predict: a bundle
folder, a spec file, a zoo name, or a study (a search definition file, or a study name whose
database is `runs/NAME.db` or given with a storage). Every command applies the same rules, in
this order; the first that matches wins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from archspec.errors import ArchspecError, ExportError, unknown_message

if TYPE_CHECKING:
    from archspec.export.source import Source
    from archspec.spec.model import Spec

Kind = Literal["bundle", "spec", "study"]


class SourceError(ArchspecError):
    """A name that is none of the things a command can take."""


@dataclass(frozen=True)
class Named:
    """What the user named: its kind and the text as given (a path, a zoo name, a study)."""

    kind: Kind
    text: str
    storage: str | None = None  # a study's storage, when given


def name_source(text: str | Path, *, storage: str | None = None, study: bool = False) -> Named:
    """Resolve `text`: a bundle folder; a search definition (a study); with `storage` or
    `study` (a trial or family member was asked for), a study name; a spec file; a zoo name;
    a study name whose default database exists. Anything else is a SourceError that says
    which of them it is not."""
    from archspec.bundle import is_bundle
    from archspec.zoo import list_specs

    text = str(text)
    path = Path(text)
    if is_bundle(path):
        return Named("bundle", text)
    if is_search_definition(path) or storage is not None or study:
        return Named("study", text, storage)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return Named("spec", text)  # a missing .yaml is reported by the spec loader
    if text in list_specs():
        return Named("spec", text)
    if _default_database(text).exists():
        return Named("study", text)
    known = unknown_message("model", text, list_specs())  # "unknown model 'x'; did you mean"
    unknown, _, hint = known.partition("; ")
    raise SourceError(
        f"{text!r} is not a bundle, a spec file, a zoo model, a search definition or a study: "
        f"{unknown} and no study database {_default_database(text)} (a study elsewhere needs "
        f"--storage); {hint}"
    )


def is_search_definition(path: Path) -> bool:
    """A YAML file whose top level names a base spec and no layers of its own."""
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return False
    from archspec.spec.yamlsource import load_yaml, read_text

    data = load_yaml(*read_text(path)).data
    return isinstance(data, dict) and "base" in data and "layers" not in data


def _default_database(study: str) -> Path:
    from archspec.search.definition.model import default_storage

    return Path(default_storage(study).removeprefix("sqlite:///"))


def spec_of(named: Named, overrides: Sequence[str] = ()) -> Spec:
    """The architecture of a spec file, a zoo name or a bundle (a damaged bundle fails here,
    clearly); KEY=VALUE `overrides` apply to a spec file or zoo name."""
    from archspec.bundle import SPEC_FILE, read_manifest
    from archspec.spec import load_spec
    from archspec.zoo import spec_path

    if named.kind == "bundle":
        read_manifest(named.text)
        return load_spec(Path(named.text) / SPEC_FILE)
    if named.kind == "study":
        raise SourceError(f"{named.text} is a study, not a spec")
    return load_spec(spec_path(named.text), overrides)


def load_source(
    source: str | Path,
    *,
    weights: str | Path | None = None,
    trial: str | int = "best",
    phi: int | None = None,
    storage: str | None = None,
    random_weights: bool = False,
) -> Source:
    """The model a command exports: a bundle (its weights), a spec file or zoo name (random
    weights unless `weights`), or a study's best trial, trial number `trial` or family member
    `phi`, with the weights the search kept for it (refused when there are none, unless
    `random_weights`)."""
    from archspec.export.source import from_bundle, from_spec

    named = name_source(source, storage=storage, study=phi is not None or trial != "best")
    if named.kind == "bundle":
        if weights is not None:
            raise ExportError(f"{source} is a bundle: it has its weights")
        return from_bundle(Path(named.text))
    if named.kind == "study":
        from archspec.search.resolve import study_source

        return study_source(named.text, trial, phi, storage, weights, random_weights)
    spec = spec_of(named)
    return from_spec(spec, f"{spec.name} from {source}", weights)
