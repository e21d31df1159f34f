"""The JSON Schemas checked with a standard validator (jsonschema, what check-jsonschema runs):
every shipped spec and search definition passes, and a file with one mistake gets one error,
at the mistake."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from archspec.search.definition.schema import search_json_schema
from archspec.spec.schema import spec_json_schema
from archspec.spec.yamlsource import load_yaml

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "search" / "bases").glob("*.yaml"))
SEARCHES = sorted((ROOT / "search").glob("*.yaml"))


@pytest.fixture(scope="module")
def validators():
    return {
        "spec": Draft202012Validator(spec_json_schema()),
        "search": Draft202012Validator(search_json_schema()),
    }


def _data(path_or_text):
    text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
    return load_yaml(text).data


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_passes(validators, path):
    errors = [e.message for e in validators["spec"].iter_errors(_data(path))]
    assert errors == []


@pytest.mark.parametrize("path", SEARCHES, ids=lambda p: p.name)
def test_every_shipped_search_definition_passes(validators, path):
    errors = [e.message for e in validators["search"].iter_errors(_data(path))]
    assert errors == []


def _errors(validators, kind, text):
    return [(list(e.absolute_path), e.message) for e in validators[kind].iter_errors(_data(text))]


def test_a_misspelt_op_field_is_one_error_at_it(validators):
    text = (ROOT / "specs" / "resnet18.yaml").read_text().replace("padding:", "paddng:", 1)
    [(path, message)] = _errors(validators, "spec", text)
    assert path == ["blocks", "basic", "layers", 0]
    assert message == "Additional properties are not allowed ('paddng' was unexpected)"


def test_a_misspelt_required_field_is_two_errors_both_at_its_item(validators):
    text = (ROOT / "specs" / "resnet18.yaml").read_text().replace("kernel_size", "kernal_size", 1)
    errors = _errors(validators, "spec", text)
    assert errors == [
        (["blocks", "basic", "layers", 0], "'kernel_size' is a required property"),
        (["blocks", "basic", "layers", 0],
         "Additional properties are not allowed ('kernal_size' was unexpected)"),
    ]  # fmt: skip


def test_an_unknown_op_is_one_error_at_its_name(validators):
    text = (ROOT / "specs" / "resnet18.yaml").read_text().replace("op: maxpool", "op: maxpol", 1)
    [(path, message)] = _errors(validators, "spec", text)
    assert path[-1] == "op" and message.startswith("'maxpol' is not one of")


def test_a_misspelt_search_field_is_one_error_at_it(validators):
    text = (ROOT / "search" / "digits_compound.yaml").read_text().replace("epochs:", "epoch:", 1)
    [(path, message)] = _errors(validators, "search", text)
    assert path == ["training"]
    assert message == "Additional properties are not allowed ('epoch' was unexpected)"


def test_archspec_schema_prints_both(tmp_path):
    for kind in ("spec", "search"):
        out = subprocess.run(
            [sys.executable, "-m", "archspec", "schema", kind],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        Draft202012Validator.check_schema(json.loads(out))


def test_from_takes_a_dotted_path_into_groups_and_nothing_else(validators):
    text = (
        "name: t\ninput: {channels: 3, size: 8}\nlayers:\n"
        "  - {op: relu, from: [stage.2.conv, halves.1, branches.0, a]}\n"
        "  - {op: relu, from: stage..conv}\n"
        "  - {op: relu, from: stage.}\n"
    )
    assert [path for path, _ in _errors(validators, "spec", text)] == [
        ["layers", 1, "from"],
        ["layers", 2, "from"],
    ]
