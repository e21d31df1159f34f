"""Writes are atomic: a failure while writing, a failed verification or a signal leaves no file
(neither partial nor temporary), and an existing file is replaced only with force."""

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from archspec.errors import ExportError
from archspec.export import FORMATS, export
from tests.export.conftest import TINY


def _replace(monkeypatch, name, **changes):
    monkeypatch.setitem(FORMATS, name, dataclasses.replace(FORMATS[name], **changes))


def test_a_failure_mid_write_leaves_nothing(tiny, tmp_path, monkeypatch):
    def half_then_crash(source, module, path):
        path.write_bytes(b"half a file")
        raise RuntimeError("disk on fire")

    _replace(monkeypatch, "safetensors", write=half_then_crash)
    with pytest.raises(ExportError, match="safetensors export failed: RuntimeError: disk on fire"):
        export(tiny, tmp_path / "w.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_verification_is_loud_and_leaves_no_file(tiny, tmp_path, monkeypatch):
    real = FORMATS["safetensors"].run

    def off_by_a_bit(path, source, inputs):
        return [[t + 1e-2 for t in outs] for outs in real(path, source, inputs)]

    _replace(monkeypatch, "safetensors", run=off_by_a_bit)
    target = tmp_path / "w.safetensors"
    with pytest.raises(
        ExportError, match=r"verification failed at batch 1: max abs difference 0\.01"
    ):
        export(tiny, target)
    assert list(tmp_path.iterdir()) == []
    target.write_text("the old file")  # even with force, a bad export replaces nothing
    with pytest.raises(ExportError, match="verification failed"):
        export(tiny, target, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]
    assert target.read_text() == "the old file"


def test_a_wrong_output_shape_or_nan_fails_verification(tiny, tmp_path, monkeypatch):
    real = FORMATS["yaml"].run
    _replace(
        monkeypatch, "yaml", run=lambda p, s, i: [[t[:, :5] for t in o] for o in real(p, s, i)]
    )
    with pytest.raises(
        ExportError, match=r"output 0 has shape \(1, 5\), the eager model's \(1, 10\)"
    ):
        export(tiny, tmp_path / "s.yaml")
    _replace(
        monkeypatch,
        "yaml",
        run=lambda p, s, i: [[t * float("nan") for t in o] for o in real(p, s, i)],
    )
    with pytest.raises(ExportError, match="max abs difference nan"):
        export(tiny, tmp_path / "s.yaml")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_needs_force(tiny, tmp_path):
    target = tmp_path / "s.yaml"
    target.write_text("mine")
    with pytest.raises(ExportError, match="exists; not overwritten without force"):
        export(tiny, target)
    assert target.read_text() == "mine"
    export(tiny, target, force=True)
    assert target.read_text().startswith("# tiny_effnet from")
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_the_format_comes_from_the_extension_or_is_named(tiny, tmp_path):
    assert export(tiny, tmp_path / "a.yml").format.name == "yaml"
    assert export(tiny, tmp_path / "weights.bin", "safetensors").format.name == "safetensors"
    with pytest.raises(ExportError, match=r"cannot tell the format from 'a\.bin'"):
        export(tiny, tmp_path / "a.bin")
    with pytest.raises(ExportError, match="unknown format 'onxx'; did you mean onnx"):
        export(tiny, tmp_path / "a.onnx", "onxx")


@pytest.mark.slow
def test_sigterm_mid_write_leaves_nothing(tmp_path):
    # a child process whose writer hangs after half a file; SIGTERM must clean up
    script = textwrap.dedent(f"""
        import dataclasses, time
        from archspec.export import FORMATS, export
        from archspec.sources import load_source
        def hang(source, module, path):
            path.write_bytes(b"partial")
            time.sleep(120)
        FORMATS["yaml"] = dataclasses.replace(FORMATS["yaml"], write=hang)
        export(load_source({str(TINY)!r}), {str(tmp_path / "out" / "s.yaml")!r})
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any((tmp_path / "out").glob(".s.*")) and time.monotonic() < deadline:
        assert child.poll() is None, child.stderr.read().decode()
        time.sleep(0.05)
    time.sleep(0.2)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 128 + signal.SIGTERM
    assert list((tmp_path / "out").iterdir()) == []


def test_a_companion_file_is_moved_with_its_file_and_never_left_alone(tiny, tmp_path, monkeypatch):
    """OpenVINO writes model.xml and model.bin: both arrive, or neither; neither clobbers."""
    target = tmp_path / "m.xml"
    result = export(tiny, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.xml"]
    assert "wrote " + str(target) + " and m.bin" in result.describe()
    (tmp_path / "n.bin").write_text("someone else's weights")
    with pytest.raises(ExportError, match=r"n\.bin exists; not overwritten without force"):
        export(tiny, tmp_path / "n.xml")
    assert (tmp_path / "n.bin").read_text() == "someone else's weights"
    assert not (tmp_path / "n.xml").exists()
    real = FORMATS["openvino"].run

    def off(path, source, inputs):
        return [[t + 1.0 for t in outs] for outs in real(path, source, inputs)]

    _replace(monkeypatch, "openvino", run=off)
    with pytest.raises(ExportError, match="verification failed"):
        export(tiny, tmp_path / "o.xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.xml", "n.bin"]


def test_a_format_whose_extra_is_missing_says_which_to_install(tiny, tmp_path, monkeypatch):
    _replace(monkeypatch, "openvino", needs=("openvino", "no_such_module_here"))
    with pytest.raises(
        ExportError,
        match=r"^the openvino format needs no_such_module_here: pip install 'archspec\[openvino\]'$",
    ):
        export(tiny, tmp_path / "m.xml")
    assert list(tmp_path.iterdir()) == []


def test_an_earlier_killed_export_s_files_are_swept_by_exact_name(tmp_path):
    import subprocess

    from archspec.export.atomic import sweep_stale

    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "30"])
    try:
        target = tmp_path / "m[1]*.onnx"  # glob characters are part of the name, nothing more
        stale = tmp_path / f".m[1]*.archspec-{dead.pid}.k2j4h1.onnx"
        stale_data = tmp_path / f".m[1]*.archspec-{dead.pid}.k2j4h1.onnx.data"
        live = tmp_path / f".m[1]*.archspec-{alive.pid}.zz91aa.onnx"
        lookalike = tmp_path / ".m1x.archspec-1.onnx"  # what a glob of the name would match
        for file in (stale, stale_data, live, lookalike):
            file.write_bytes(b"partial")
        assert sorted(sweep_stale(target)) == sorted([stale, stale_data])
        assert live.exists() and lookalike.exists() and not stale.exists()
    finally:
        alive.kill()
        alive.wait()
