"""`archspec import` and `archspec.from_torch`: exact specs (parameters, state_dict names,
outputs), blocks and repeats recovered, one error listing what cannot be mapped, nothing
written unless verified, and plugin ops that map a user's module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import archspec
from archspec.cli import app
from archspec.importer import ImportSourceError, from_torch, import_module
from archspec.ops import REGISTRY
from archspec.ops.base import example
from tests.importer import models

runner = CliRunner()
ZOO = Path(__file__).resolve().parents[2] / "specs"


@pytest.fixture(autouse=True, scope="module")
def _commands():
    from archspec.cli import importer  # noqa: F401 - registers the command


def check_exact(source: torch.nn.Module, spec: archspec.Spec, shape=(3, 32, 32)) -> None:
    """What the importer promises, checked again from outside."""
    source = source.eval()
    model = archspec.build(spec).eval()
    assert list(model.state_dict()) == list(source.state_dict()) or set(model.state_dict()) == set(
        source.state_dict()
    )
    model.load_state_dict(source.state_dict(), strict=True)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=1e-4, atol=1e-4)


def test_a_small_model_with_a_repeated_block():
    source = models.Tiny()
    imported = import_module(source, (3, 16, 16), name="tiny")
    check_exact(source, imported.spec, (3, 16, 16))
    text = imported.text
    assert text.startswith("# imported by")
    assert "{block: residual, name: stage, repeat: 3}" in text
    assert "blocks:\n  residual:" in text


def test_from_torch_returns_a_spec_that_analyses_and_scales():
    spec = from_torch(models.Tiny(), input_shape=(3, 16, 16))
    report = archspec.analyze(spec)
    assert report.params == sum(p.numel() for p in models.Tiny().parameters())
    wider = archspec.scale(spec, width=2.0)
    assert archspec.analyze(wider).params > report.params


def test_unmapped_parts_are_listed_once_with_count_and_first_place(tmp_path):
    with pytest.raises(ImportSourceError) as caught:
        import_module(models.Unmappable(), (3, 8, 8))
    lines = [str(p) for p in caught.value.problems]
    assert lines == [
        "unmapped module torch.nn.modules.activation.ELU: 2 uses, first at act1",
        "unmapped function torch.erf: 1 use, first at erf",
    ]
    out = tmp_path / "model.yaml"
    result = runner.invoke(
        app, ["import", "tests.importer.models:unmappable", "-o", str(out), "--input", "3,8,8"]
    )
    assert result.exit_code == 1
    assert "unmapped module torch.nn.modules.activation.ELU: 2 uses" in result.output
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_module_list_called_entry_by_entry_is_one_group_read_at_its_entries():
    source = models.Fuse()
    imported = import_module(source, (3, 8, 8))
    check_exact(source, imported.spec, (3, 8, 8))
    assert imported.text.split("layers:\n", 1)[1] == (
        "  - {op: conv2d, name: stem, out_channels: 4, kernel_size: 1}\n"
        "  - name: fuse_layers\n"
        "    layers:\n"
        "      - {op: conv2d, out_channels: 4, kernel_size: 1}\n"
        "      - {op: conv2d, from: input, out_channels: 4, kernel_size: 1}\n"
        "      - {op: conv2d, from: input, out_channels: 4, kernel_size: 1}\n"
        '  - {op: add, name: add, from: [stem, "fuse_layers.0"]}\n'
        '  - {op: add, name: add_1, from: [add, "fuse_layers.1"]}\n'
        "  - {op: add, name: add_2, from: [add_1, fuse_layers]}\n"
    )


def test_a_parent_op_that_must_run_between_entries_joins_the_list():
    source = models.Head()
    imported = import_module(source, (3, 8, 8))
    check_exact(source, imported.spec, (3, 8, 8))
    down = imported.text.split("name: down\n", 1)[1]
    assert '{op: add, name: add, from: ["incre.1", "0"]}' in down  # between down.0 and down.1
    assert down.endswith("\n  - {op: add, name: add, from: [incre, down]}\n")  # the model's


def test_module_lists_called_in_turn_keep_their_groups_and_read_later_items():
    source = models.Hierarchical()
    imported = import_module(source, (3, 8, 8))
    check_exact(source, imported.spec, (3, 8, 8))
    convs = imported.text.split("name: convs\n", 1)[1]
    assert convs.startswith('    from: "split.0"\n    layers:\n')
    assert "{op: conv2d, from: add, out_channels: 2" in convs  # add: bns.0 + split.1, later
    assert 'from: [relu, relu_1, relu_2, "split.3"]}' in convs  # spx[-1]


def test_a_reshaped_parameter_keeps_all_its_axes():
    source = models.LayerScales()
    imported = import_module(source, (3, 8, 8))
    check_exact(source, imported.spec, (3, 8, 8))
    assert "shape: [4, 1, 1]}" in imported.text  # (C,) -> (C, 1, 1), batched
    assert "shape: [1, 4]}" in imported.text  # (1, C): broadcast over tokens


def test_paths_stacked_and_summed_import_as_concat_reshape_and_sum():
    source = models.SelectiveKernel()
    imported = import_module(source, (3, 8, 8))
    check_exact(source, imported.spec, (3, 8, 8))
    text = imported.text
    assert (
        '{op: concat, from: ["paths.0", paths]}\n  - {op: reshape, name: reshape, shape: [2, 4'
        in text
    )
    assert "{op: sum, dim: 1}" in text and "{op: sum, name: sum_1, dim: 1}" in text
    assert "{op: mul, name: mul_1, from: [sum_1, sigmoid]}" in text  # expand_as: broadcast


def test_unsqueeze_is_a_reshape_and_nearest_interpolation_to_a_multiple_an_upsample():
    source = models.GlobalContext()
    imported = import_module(source, (4, 8, 8))
    check_exact(source, imported.spec, (4, 8, 8))
    assert "{op: reshape, name: reshape_1, shape: [1, 64, 1]}" in imported.text  # unsqueeze(3)
    assert "{op: upsample, name: upsample, from: sigmoid, scale_factor: 2}" in imported.text


def test_a_tensor_overwritten_in_place_is_read_overwritten_after():
    source = models.OverwrittenBetween()  # x.relu_() between the entries of a list
    imported = import_module(source, (3, 8, 8))
    check_exact(source, imported.spec, (3, 8, 8))
    assert "{op: conv2d, from: relu, out_channels: 4, kernel_size: 1}" in imported.text


def test_a_learned_scalar_multiplied_in_place_is_a_learned_scale():
    source = models.SkipInit()
    imported = import_module(source, (3, 8, 8))
    check_exact(source, imported.spec, (3, 8, 8))
    assert "{op: scale, name: skipinit_gain, learned: scalar, value: 0.5}" in imported.text


def test_a_relative_position_bias_over_a_whole_image_reads_its_1_as_the_batch():
    source = models.WholeImageAttention()
    imported = import_module(source, (4, 4, 4))
    check_exact(source, imported.spec, (4, 4, 4))
    text = imported.text
    assert "{op: parameter, name: relative_position_bias_table, from: input, " in text  # not chunk
    assert "{op: relative_position_bias, name: relative_position_index, window_size: 4, " in text
    assert "saved: false}\n  - {op: reshape, name: reshape_1, shape: [2, 16, 16]}" in text


@pytest.mark.parametrize(
    ("model", "line"),
    [
        (
            models.SharedInside(),
            "unmapped module called from inside another module's forward: 3 uses, first at pos "
            "(blocks.0 calls it, though it is not part of blocks.0: a module shared between "
            "blocks, and a spec has no shared weights)",
        ),
    ],
)
def test_a_module_that_cannot_be_one_group_is_refused_with_its_cause(model, line):
    with pytest.raises(ImportSourceError) as caught:
        import_module(model, (3, 8, 8))
    assert str(caught.value.problems[0]) == line


def test_maxvit_attention_imports_exactly():
    source = models.MaxVitLike()
    imported = import_module(source, (3, 8, 8), name="maxvit_like")
    check_exact(source, imported.spec, (3, 8, 8))
    text = imported.text
    # einsum("BGHID,BGHJD->BGHIJ", q, k) and the bias table looked up by index.view(-1)
    assert "{op: matmul, name: matmul, from: [permute, scale], transpose_b: true}" in text
    assert "{op: relative_position_bias, name: relative_position_index, window_size: 2}" in text


class EluOp(archspec.Op):
    """ELU, as a user would register it for the module archspec does not map."""

    op = "elu_for_import_test"
    imports = ("torch.nn.modules.activation.ELU",)
    examples = (example({"alpha": 0.5}, (3, 4, 4)),)
    alpha: float = 1.0

    @classmethod
    def fields_of(cls, module):
        return {"alpha": module.alpha}

    def build(self, inputs):
        return torch.nn.ELU(self.alpha)


def test_a_plugin_op_maps_a_users_module_and_the_import_goes_through():
    model = models.Tiny(act="elu")
    with pytest.raises(ImportSourceError, match="ELU"):
        import_module(model, (3, 16, 16))
    archspec.register(EluOp)
    try:
        imported = import_module(model, (3, 16, 16))
        assert "{op: elu_for_import_test, alpha: 1.0}" in imported.text
        check_exact(model, imported.spec, (3, 16, 16))
    finally:
        del REGISTRY[EluOp.op]


def test_attention_pieces_map_to_select_sdpa_split_and_broadcast_merges():
    model = models.Tokens()
    imported = import_module(model, (3, 16, 16))
    text = imported.text
    assert "{op: select, dim: 2, index: 0}" in text and "{op: sdpa," in text
    assert "sizes: [8, 8, 8], dim: 3}" in text and "{op: sub," in text
    assert "from: ls, shape: [1, 16]}" in text  # the (C,) scale, broadcast over the tokens
    check_exact(model, imported.spec, (3, 16, 16))


def test_values_an_inner_group_cannot_name_are_read_through_an_alias():
    model = models.Dla()
    imported = import_module(model, (3, 8, 8))
    assert "{op: concat, from: [input, downsample_1, tree2_input_1]}" in imported.text
    check_exact(model, imported.spec, (3, 8, 8))


def test_a_module_traced_through_becomes_primitives():
    model = models.Tiny(act="scaled_tanh")  # alpha * tanh(x): parameter, tanh, mul
    imported = import_module(model, (3, 16, 16))
    assert "{op: parameter, name: alpha, shape: [16, 1, 1]}" in imported.text
    check_exact(model, imported.spec, (3, 16, 16))


def test_the_command_writes_a_verified_spec_and_never_overwrites(tmp_path):
    out = tmp_path / "tiny.yaml"
    args = ["import", "tests.importer.models:tiny", "-o", str(out), "--input", "3,16,16"]
    result = runner.invoke(app, [*args, "--kwargs", '{"num_classes": 5}'])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    text = out.read_text()
    assert text.startswith("# imported by `archspec import tests.importer.models:tiny`")
    assert "out_features: 5" in text
    assert archspec.analyze(archspec.load_spec(out)).params == sum(
        p.numel() for p in models.tiny(num_classes=5).parameters()
    )
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "exists" in again.output
    bad = runner.invoke(app, [*args[:-2], "--input", "3,16", "--force"])
    assert bad.exit_code == 1 and "channels,height,width" in bad.output
    bad = runner.invoke(app, ["import", "nosuchthing", "-o", str(tmp_path / "x.yaml")])
    assert bad.exit_code == 1 and "expected torchvision:NAME" in bad.output


@pytest.mark.slow
def test_imported_resnet50_reads_like_the_zoo():
    import torchvision

    source = torchvision.models.resnet50()
    imported = import_module(source, (3, 64, 64), source="torchvision:resnet50")
    check_exact(source, imported.spec, (3, 64, 64))
    ours = imported.text.count("\n")
    zoo = (ZOO / "resnet50.yaml").read_text().count("\n")
    assert ours <= 1.5 * zoo, (ours, zoo)
    stages = [line for line in imported.text.splitlines() if "{block: bottleneck" in line]
    assert [s.split("repeat: ")[1][0] for s in stages] == ["3", "4", "6", "3"]


@pytest.mark.slow
def test_imported_efficientnet_b0_has_mbconv_blocks_with_repeats():
    import torchvision

    source = torchvision.models.efficientnet_b0()
    imported = import_module(source, (3, 64, 64), source="torchvision:efficientnet_b0")
    check_exact(source, imported.spec, (3, 64, 64))
    text = imported.text
    assert text.count("{block: mbconv") == 7
    assert "repeat: 4" in text and "repeat: 3" in text
    assert "depth_index / depth_total" in text  # the stochastic-depth schedule, as a rule
    zoo = (ZOO / "efficientnet_b0.yaml").read_text().count("\n")
    assert text.count("\n") <= 1.5 * zoo


def test_a_forward_that_branches_on_sizes_is_traced_with_its_sizes_fixed(tmp_path):
    """torch.fx alone cannot trace `if x.shape[-1] % patch:` or `range(x.size(-1) // 8)`: the
    sized trace settles them at the input's sizes, and the header says so."""
    source = models.PadToPatches()
    imported = import_module(source, (3, 16, 14), name="pad_to_patches")
    check_exact(source, imported.spec, (3, 16, 14))
    text = imported.text
    assert "# captured by torch.fx, sizes fixed at the input 3x16x14 while tracing" in text
    assert "{op: pad, padding: [0, 0, 0, 2]}" in text  # width 14 padded to 16: two blocks
    assert "{block: residual, name: blocks, repeat: 2}" in text
    out = tmp_path / "pad.yaml"
    args = ["import", "tests.importer.models:pad_to_patches", "-o", str(out), "--input", "3,16,14"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    written = out.read_text()
    assert written.startswith(
        "# imported by `archspec import tests.importer.models:pad_to_patches`"
    )
    assert (
        written.split("\nname:")[1] == text.split("\nname:")[1]
    )  # the same spec, its header aside


def test_a_forward_that_branches_on_values_is_refused_in_one_line(tmp_path):
    line = (
        "torch.fx cannot trace ValueBranch: its forward branches on tensor values at "
        "tests/importer/models.py:{} (`if x.mean() > 0:`); a spec has one data flow for every "
        "input, so this model cannot be imported"
    )
    lineno = next(
        n
        for n, text in enumerate(Path(models.__file__).read_text().splitlines(), 1)
        if "if x.mean() > 0:" in text
    )
    with pytest.raises(ImportSourceError) as caught:
        import_module(models.ValueBranch(), (3, 8, 8))
    assert str(caught.value) == line.format(lineno)
    out = tmp_path / "value.yaml"
    args = ["import", "tests.importer.models:value_branch", "-o", str(out), "--input", "3,8,8"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [line.format(lineno)]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("model", [models.Tokens(), models.MaxVitLike(), models.Dla()])
def test_shapes_recorded_on_fake_tensors_are_those_of_a_real_run(model):
    from torch._subclasses.fake_tensor import FakeTensor

    from archspec.importer.capture import record_shapes, trace

    seen: list[type] = []
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    first.register_forward_pre_hook(lambda m, args: seen.append(type(args[0])))
    x = torch.randn(2, 3, 16, 16) if isinstance(model, models.Tokens) else torch.randn(2, 3, 8, 8)
    graph = trace(model.eval(), x).graph
    assert seen == [FakeTensor]  # the capture computed nothing
    fake = {n.name: n.meta.get("tensor_meta") for n in graph.graph.nodes}
    record_shapes(graph, x, fake=False)
    assert seen[1:] == [torch.Tensor]
    assert {n.name: n.meta.get("tensor_meta") for n in graph.graph.nodes} == fake


class _FixedSize(torch.nn.Module):
    """A model that only runs at 32x32, as a ViT with a fixed position table does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.pos = torch.nn.Parameter(torch.zeros(1, 4, 32, 32))

    def forward(self, x):
        return self.conv(x) + self.pos


def fixed_size() -> _FixedSize:
    return _FixedSize()


def test_a_model_that_does_not_run_at_the_input_is_refused_before_tracing(tmp_path):
    import_module(_FixedSize(), (3, 32, 32))  # runs at its own size
    with pytest.raises(ImportSourceError) as caught:
        import_module(_FixedSize(), (3, 16, 16), source="tests:fixed")
    assert str(caught.value).startswith(
        "tests:fixed does not run on a 3x16x16 input: RuntimeError: The size of tensor a (16) "
        "must match the size of tensor b (32)"
    )
    out = tmp_path / "fixed.yaml"
    args = ["import", "tests.importer.test_import:fixed_size", "-o", str(out), "--input", "3,16,16"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "does not run on a 3x16x16 input" in result.output and "img_size" in result.output
    assert not list(tmp_path.iterdir())


class _TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x, y):
        return self.conv(x) + self.conv(y)


class _Returns(torch.nn.Module):
    """A model whose output is a dict, or a list with a number in it."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        f = self.conv(x)
        return {"feat": f, "logits": f.mean((2, 3))} if self.kind == "dict" else [f, 3]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_TwoInputs(), "m: its forward takes 2 inputs (x, y); only models with one input can be "
         "imported"),
        (_Returns("dict"), "m returns a dict (feat, logits); a spec's outputs are tensors: import a "
         "wrapper whose forward returns a tensor or a tuple of tensors"),
        (_Returns("list"), "m returns a list of Tensor, int; a spec's outputs are tensors: import "
         "a wrapper whose forward returns a tensor or a tuple of tensors"),
    ],
)  # fmt: skip
def test_a_model_with_two_inputs_or_outputs_that_are_not_tensors_is_refused_saying_so(
    model, message
):
    with pytest.raises(ImportSourceError) as caught:
        import_module(model, (3, 8, 8), source="m")
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ("3,100000,100000", "an input of 3x100000x100000 is 120,000,000,000 bytes of activations; "
         "the limit is 34,359,738,368, set by ARCHSPEC_MAX_ACTIVATION_BYTES"),
        ("3,0,5", "input shape: expected channels,height,width (positive integers); got [3, 0, 5]"),
        ("3,-1,4", "input shape: expected channels,height,width (positive integers); got [3, -1, 4]"),
    ],
)  # fmt: skip
def test_an_input_too_large_or_empty_is_refused_before_anything_is_allocated(
    shape, message, tmp_path
):
    out = tmp_path / "m.yaml"
    result = runner.invoke(
        app, ["import", "torchvision:resnet18", "-o", str(out), "--input", shape]
    )
    assert result.exit_code == 1
    assert result.output.strip() == message
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("model", "shape"),
    [(models.Tokens(), (3, 16, 16)), (models.MaxVitLike(), (3, 8, 8)), (models.Dla(), (3, 8, 8))],
)
def test_the_sized_trace_of_a_model_torch_fx_traces_gives_the_same_spec(model, shape):
    """The fallback records what torch.fx records, sizes aside: the same spec where both trace."""
    from archspec.importer.capture import _trace, leaf_types
    from archspec.importer.convert import spec_text
    from archspec.importer.tree import TreeBuilder, resolve

    def text(sized: bool) -> str:
        graph = _trace(model.eval(), torch.randn(2, *shape), leaf_types(through=True), sized)
        builder = TreeBuilder(graph, model)
        root = builder.build()
        return spec_text(root, resolve(root, builder), "m", shape)

    assert text(sized=True) == text(sized=False)


def test_the_capture_computes_nothing_so_a_model_too_large_to_run_is_captured():
    from archspec.importer.capture import trace

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 512, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1)
    )
    x = torch.zeros(1).expand(2, 3, 8192, 8192)  # a real run: 2 x 512 x 8192^2 floats, 275 GB
    graph = trace(model.eval(), x).graph
    shapes = [tuple(n.meta["tensor_meta"].shape) for n in graph.graph.nodes if n.op != "output"]
    assert shapes == [
        (2, 3, 8192, 8192),
        (2, 512, 8192, 8192),
        (2, 512, 8192, 8192),
        (2, 512, 1, 1),
    ]


class _SumFromZero(torch.nn.Module):
    """Branches summed into a running total that starts at the number 0 (MobileOne's blocks)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.b = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x):
        out = 0
        out = out + self.a(x)
        total = self.b(x) - 0
        return out + total


def test_adding_the_number_zero_is_the_value_itself():
    source = _SumFromZero()
    imported = import_module(source, (3, 8, 8))
    check_exact(source, imported.spec, (3, 8, 8))
    assert imported.text.count("op: add") == 1 and "scale" not in imported.text


class _AppendList(torch.nn.Sequential):
    """Each entry's output is kept and all are concatenated (VoVNet's SequentialAppendList)."""

    def forward(self, x):
        outputs = [x]
        for module in self:
            x = module(x)
            outputs.append(x)
        return torch.cat(outputs, dim=1)


class _OneShotAggregation(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.mid = _AppendList(
            *(torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU())
              for _ in range(3))
        )  # fmt: skip
        self.head = torch.nn.Conv2d(16, 8, 1)

    def forward(self, x):
        return self.head(self.mid(self.stem(x)))


def test_numbered_entries_read_by_name_keep_their_numbers():
    source = _OneShotAggregation()
    imported = import_module(source, (3, 8, 8))
    check_exact(source, imported.spec, (3, 8, 8))
    assert '"0", "1", "2"]' in imported.text  # the concat reads the entries by their numbers


def test_group_norms_import_as_groupnorm():
    timm_layers = pytest.importorskip("timm.layers")
    source = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.GroupNorm(4, 8),
        timm_layers.GroupNormAct(8, num_groups=2, act_layer=torch.nn.ReLU),
        timm_layers.GroupNorm1(8, eps=1e-6),  # PoolFormer's: one group
    )
    for m in source.modules():  # not the initial ones and zeros, so a wrong grouping shows
        if isinstance(m, torch.nn.GroupNorm):
            torch.nn.init.normal_(m.weight)
            torch.nn.init.normal_(m.bias)
    imported = import_module(source, (3, 8, 8))
    check_exact(source, imported.spec, (3, 8, 8))
    assert imported.text.count("op: groupnorm") == 3
    assert "num_groups: 2" in imported.text and "{op: relu" in imported.text


def test_groupnorm_needs_channels_that_split_into_its_groups():
    text = "name: g\ninput: {channels: 3, size: 8}\nlayers:\n"
    text += (
        "  - {op: conv2d, out_channels: 6, kernel_size: 1}\n  - {op: groupnorm, num_groups: 4}\n"
    )
    with pytest.raises(archspec.ArchspecError) as caught:
        archspec.analyze(archspec.load_spec(text))
    assert "<spec>:5:5" in str(caught.value)
    assert "groupnorm: 6 channels do not split into 4 groups" in str(caught.value)


def test_padding_modules_import_as_pad():
    source = torch.nn.Sequential(
        torch.nn.ConstantPad2d((1, 0, 2, 1), 0.5),
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.ReflectionPad2d((2, 1, 0, 1)),
        torch.nn.ZeroPad2d(1),
    )
    imported = import_module(source, (3, 8, 9))
    check_exact(source, imported.spec, (3, 8, 9))
    assert "padding: [2, 1, 1, 0], value: 0.5" in imported.text
    assert "padding: [0, 1, 2, 1], mode: reflect" in imported.text


class _MadeFromSizes(torch.nn.Module):
    """A tensor made from constants alone (EdgeNeXt's Fourier position encoding: arange)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x):
        t = torch.arange(4, dtype=torch.int64, device=self.conv.weight.device).to(torch.float32)
        return self.conv(x) * t.view(1, 4, 1, 1)


def test_an_unmapped_function_that_reads_no_tensor_is_reported_not_looped_on():
    # an unmapped node without a tensor input used to alias itself: the import never ended
    with pytest.raises(ImportSourceError) as caught:
        import_module(_MadeFromSizes(), (3, 8, 8))
    assert "unmapped function torch.arange: 1 use" in str(caught.value)
