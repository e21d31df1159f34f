"""Hostile or broken files: a clean, located SpecError; never a hang, crash or code execution."""

import os
import time
from pathlib import Path

import pytest

import archspec
from archspec.errors import SpecError

GOOD = "name: t\ninput: {channels: 3, size: 8}\nlayers:\n  - {op: relu}\n"

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(9)
)

CASES = {
    "alias-bomb": (ALIAS_BOMB.encode(), "aliases", 2),
    "deep-nesting": (("x: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "nesting", None),
    "deep-block-nesting": (
        "".join("  " * i + f"k{i}:\n" for i in range(200)).encode(),
        "nesting",
        None,
    ),
    "binary": (b"\x00\x01\x02\xff\xfe", "", None),
    "non-utf8": (b"name: caf\xe9\ninput: {}\n", "not UTF-8", 1),
    "python-object-tag": (b"name: !!python/object/apply:os.system ['echo pwned']\n", "tag", 1),
    "custom-tag": (b"name: !include other.yaml\n", "tag", 1),
    "two-documents": (GOOD.encode() + b"---\n" + GOOD.encode(), "one YAML document", 5),
    "huge-int": (
        GOOD.replace("size: 8", "size: 99999999999999999999999999").encode(),
        "too large",
        2,
    ),
    "nan": (GOOD.replace("size: 8", "size: .nan").encode(), "not a finite number", 2),
    "inf": (
        b"name: t\ninput: {channels: 3, size: 8}\nlayers:\n  - {op: dropout, p: .inf}\n",
        "not a finite number",
        4,
    ),
    "yaml11-on": (
        b"name: t\ninput: {channels: 3, size: 8}\nlayers:\n  - {op: conv2d, kernel_size: 1, bias: on}\n",
        "valid boolean",
        4,
    ),
    "yaml11-octal": (GOOD.replace("size: 8", "size: 010").encode(), "'010'", 2),
    "yaml11-sexagesimal": (GOOD.replace("size: 8", "size: 1:30").encode(), "'1:30'", 2),
    "float-exponent-as-int": (GOOD.replace("size: 8", "size: 1e9").encode(), "1000000000.0", 2),
    "empty": (b"", "empty", 1),
    "scalar-document": (b"just a string\n", "mapping", 1),
    "list-document": (b"- a\n- b\n", "mapping", 1),
    "control-characters": (b"name: t\x07\n", "", None),
    "non-string-key": (b"name: t\n? [a, b]\n: 1\n", "keys", 2),
    "unclosed-flow": (b"name: t\ninput: {channels: 3\n", "YAML syntax", None),
}


@pytest.mark.parametrize(("data", "needle", "line"), list(CASES.values()), ids=list(CASES))
def test_hostile_file_gives_clean_error(tmp_path, data, needle, line):
    path = tmp_path / "evil.yaml"
    path.write_bytes(data)
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        archspec.build_graph(path)
    assert time.perf_counter() - start < 5
    error = info.value
    assert needle in str(error)
    assert error.file == str(path)
    if line is not None:
        assert error.line == line, str(error)
    assert "\n" not in error.problems[0].message


def test_python_tag_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SpecError):
        archspec.load_spec(path)
    assert not marker.exists()


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec"):
        archspec.load_spec(tmp_path / "nope.yaml")


def _fifo(tmp_path):
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)
    return path


def _sparse(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB of zeros, no disk used
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_fifo, "not a regular file"),  # opening must not wait for a writer
        (lambda _: Path("/dev/zero"), "not a regular file"),  # endless
        (_sparse, "limited to 4194304"),  # refused without reading a gigabyte
        (lambda tmp: tmp, "is a directory"),
    ],
    ids=["fifo", "dev-zero", "1-gib", "directory"],
)
def test_files_that_cannot_be_specs_are_refused_without_reading_them(tmp_path, make, message):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(SpecError, match=message):
        archspec.load_spec(make(tmp_path))
    assert time.perf_counter() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB


def test_a_single_line_name_of_an_existing_file_is_read_as_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "NET.YML").write_text(GOOD)
    (tmp_path / "net.txt").write_text(GOOD)
    assert archspec.load_spec("NET.YML").name == archspec.load_spec("net.txt").name == "t"
