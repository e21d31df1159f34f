"""`archspec export`: sources (spec file, zoo name, study), format from -o, --force, errors."""

from pathlib import Path

import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

import archspec
from archspec.cli import analysis, app, export, search, spec  # noqa: F401 - registers commands
from tests.export.conftest import TINY

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_export_a_spec_file_prints_the_difference(tmp_path):
    out = tmp_path / "tiny.pt"
    result = invoke("export", TINY, "-o", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (torchscript," in result.output
    assert "max abs difference from the eager model: batch 1: 0, batch 4: 0" in result.output
    assert "weights: random (seed 0)" in result.output


def test_force_is_needed_to_overwrite(tmp_path):
    out = tmp_path / "s.yaml"
    out.write_text("keep me")
    result = invoke("export", TINY, "-o", out)
    assert result.exit_code == 1
    assert f"{out} exists; pass --force to overwrite it" in result.output
    assert out.read_text() == "keep me"
    assert invoke("export", TINY, "-o", out, "--force").exit_code == 0
    assert archspec.load_spec(out).name == "tiny_effnet"


def test_weights_from_safetensors(tmp_path):
    model = archspec.build(archspec.load_spec(TINY))
    for p in model.parameters():
        torch.nn.init.normal_(p)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "w.safetensors"
    )
    out = tmp_path / "trained.safetensors"
    result = invoke("export", TINY, "--weights", tmp_path / "w.safetensors", "-o", out)
    assert result.exit_code == 0, result.output
    from safetensors.torch import load_file

    assert torch.equal(load_file(out)["classifier.weight"], model.state_dict()["classifier.weight"])


def test_weights_under_other_names_are_refused_never_paired_by_shape(tmp_path):
    """A safetensors file stores tensors sorted by dtype and name, not in forward order:
    BatchNorm's weight and bias (same shape) renamed must not land in each other's places."""
    state = archspec.build(archspec.load_spec(TINY)).state_dict()
    bn = next(k for k in state if k.endswith(".bias") and f"{k[:-5]}.running_mean" in state)
    renamed = {
        ("zz_" + k if k.startswith(bn[:-5]) else k): v.contiguous() for k, v in state.items()
    }
    save_file(renamed, tmp_path / "renamed.safetensors")
    save_file(
        {k: v.contiguous() for k, v in state.items() if k != bn}, tmp_path / "short.safetensors"
    )
    wrong = {k: (v[:1].contiguous() if k == bn else v.contiguous()) for k, v in state.items()}
    save_file(wrong, tmp_path / "wrong.safetensors")
    (tmp_path / "adir").mkdir()
    for name, message in (
        ("renamed.safetensors", "the weights do not fit the spec: missing: "),
        ("short.safetensors", f"the weights do not fit the spec: missing: {bn}"),
        ("wrong.safetensors", f"wrong shape: {bn} [1] (model: "),
        ("adir", "cannot read weights: is a directory"),
    ):
        out = tmp_path / "out" / "x.safetensors"
        result = invoke("export", TINY, "--weights", tmp_path / name, "-o", out)
        assert result.exit_code == 1 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_errors_are_one_line_and_exit_1(tmp_path):
    cases = [
        (["export", TINY, "-o", tmp_path / "x.bin"], "cannot tell the format from 'x.bin'"),
        (["export", TINY, "-o", tmp_path / "x.py", "--optimize"], "optimize applies to onnx"),
        (["export", "nosuch_model", "-o", tmp_path / "x.yaml"], "'nosuch_model' is not a bundle"),
        (
            ["export", TINY, "--weights", tmp_path / "none.safetensors", "-o", tmp_path / "x.yaml"],
            "cannot read weights",
        ),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert list(Path(tmp_path).iterdir()) == []


def test_zoo_name_to_yaml(tmp_path):
    result = invoke("export", "resnet18", "-o", tmp_path / "r.yaml")
    assert result.exit_code == 0, result.output
    assert archspec.load_spec(tmp_path / "r.yaml").name == "resnet18"


def test_the_help_names_every_format_of_the_table():
    # the CLI keeps its own list (importing the table would import torch for `archspec --help`)
    from archspec.export import FORMATS

    assert export._FORMATS == ", ".join(FORMATS)


def test_exporter_failures_are_one_line_naming_the_file_asked_for(tmp_path, monkeypatch):
    import tempfile

    from archspec.export import formats

    cases = [
        (
            ["--format", "openvino"],
            "x.onnx",
            "the openvino format is read only from files named *.xml",
        ),
        (["--format", "pt2"], "x.onnx", "the pt2 format is read only from files named *.pt2"),
        (["--tolerance", "nan"], "x.onnx", "--tolerance must be in [0, 1)"),
    ]
    for extra, name, message in cases:
        result = invoke("export", TINY, "-o", tmp_path / name, *extra)
        assert result.exit_code != 0 and message in result.output, result.output
    assert list(tmp_path.iterdir()) == []

    def noisy(source, module, path):  # as onnx and OpenVINO fail: many lines, the temp name
        raise RuntimeError(f"\x1b[96mCheck failed\x1b[0m for {path}\n  at serialize.cpp:36\n\n")

    fmt = formats.FORMATS["onnx"]
    monkeypatch.setitem(formats.FORMATS, "onnx", formats.Format(**{**vars(fmt), "write": noisy}))
    out = tmp_path / "m.onnx"
    result = invoke("export", TINY, "-o", out)
    assert result.exit_code == 1
    assert result.output.strip() == f"onnx export failed: RuntimeError: Check failed for {out}"
    assert list(tmp_path.iterdir()) == []

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    result = invoke("export", TINY, "-o", tmp_path / "t.pt")
    assert result.output.strip() == f"{tmp_path / 't.pt'}: cannot write here: Permission denied"


def test_ctrl_c_that_an_exporter_swallows_is_still_an_interrupt(tmp_path, monkeypatch):
    import os
    import signal

    from archspec.export import formats
    from archspec.export.pipeline import export as export_model
    from archspec.sources import load_source

    def swallowing(source, module, path):  # torch.onnx catches it and fails otherwise
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass
        raise AttributeError("module 'torch._dynamo' has no attribute 'exc'")

    fmt = formats.FORMATS["onnx"]
    monkeypatch.setitem(
        formats.FORMATS, "onnx", formats.Format(**{**vars(fmt), "write": swallowing})
    )
    try:
        export_model(load_source(TINY), tmp_path / "m.onnx")
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("not seen as interrupted")
    assert list(tmp_path.iterdir()) == []
