"""The op contract, run over every registered op on the examples it declares: it builds, the
real output shape is the inferred one, counted params are sum(p.numel()), FLOPs agree with
FlopCounterMode, the receptive field is what the output really depends on, torch.export works."""

from __future__ import annotations

import math

import pytest
import torch
from torch import fx, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from archspec.ops import REGISTRY, Example, Op, Window, register
from archspec.ops.conv import Conv2d
from archspec.shape import Shape

BATCH = 2


def single_op_module(op: Op, shapes: list[Shape]) -> fx.GraphModule:
    """The op alone as the compiler builds it: its state at `op`, its emitted forward code."""
    code = fx.Graph()
    args = [code.placeholder(f"x{i}") for i in range(len(shapes))]
    root = nn.Module()
    state = op.build(shapes)
    if isinstance(state, nn.Parameter):
        root.register_parameter("op", state)
    elif isinstance(state, torch.Tensor):
        root.register_buffer("op", state)
    elif state is not None:
        root.add_module("op", state)
    code.output(op.emit(code, args, "op", shapes))
    return fx.GraphModule(root, code).eval()


def _inputs(shapes: list[Shape], batch: int) -> list[torch.Tensor]:
    return [torch.rand(batch, *s.dims) + 0.1 for s in shapes]


def _spatial(shape: Shape) -> bool:
    return shape.layout in ("CHW", "HWC")


def _axes(shape: Shape) -> tuple[int, int]:
    return (1, 2) if shape.layout == "CHW" else (0, 1)


def _dependence(module: nn.Module, shapes: list[Shape], which: int, out: Shape) -> torch.Tensor:
    """(H, W) mask of the pixels of input `which` that the centre output unit depends on: the
    pixels whose NaN poisons it (exact also for max pooling, whose gradient picks one pixel)."""
    h, w = shapes[which].spatial
    xs = _inputs(shapes, h * w)
    hx, wx = _axes(shapes[which])
    poisoned = xs[which].movedim((hx + 1, wx + 1), (1, 2)).reshape(h * w, h * w, -1)
    poisoned[torch.arange(h * w), torch.arange(h * w)] = float("nan")
    with torch.no_grad():
        y = module(*xs)
    ho, wo = _axes(out)
    ci, cj = out.spatial[0] // 2, out.spatial[1] // 2
    centre = y.movedim((ho + 1, wo + 1), (1, 2))[:, ci, cj]
    return centre.reshape(h * w, -1).isnan().any(dim=1).view(h, w)


def _expected(window: Window, size: int, out_size: int, centre: int) -> range:
    """Input pixels (one axis) the output unit `centre` sees per the op's Window."""
    if window.whole:
        return range(size)
    span = window.dilation * (window.kernel - 1) + 1
    first = math.floor(centre * window.stride) - window.padding  # stride 1/s: upsampling
    return range(max(first, 0), min(first + span, size))


def check_receptive_field(op: Op, module: nn.Module, shapes: list[Shape], out: Shape) -> None:
    if not _spatial(out):
        return
    windows = op.windows(shapes)
    for which, shape in enumerate(shapes):
        if not _spatial(shape) or shape.spatial == (1, 1) != out.spatial:
            continue  # broadcast gates: every output reads their one pixel
        seen = _dependence(module, shapes, which, out)
        rows = seen.any(dim=1).nonzero().flatten().tolist()
        cols = seen.any(dim=0).nonzero().flatten().tolist()
        for axis, got in enumerate((rows, cols)):
            window = windows[axis]
            size, centre = shape.spatial[axis], out.spatial[axis] // 2
            expected = _expected(window, size, out.spatial[axis], centre)
            if op.global_gate:  # the field counts the local path; the gate reads everything
                expected = range(size)
            extent = range(got[0], got[-1] + 1)  # a dilated kernel reads with gaps
            if getattr(type(op), "tiles", False):  # the window the unit falls in: size only
                assert len(extent) == min(window.kernel, size), (f"axis {axis}", got, window)
            else:
                assert extent == expected, (f"axis {axis}", got, expected, window)


def check_example(cls: type[Op], ex: Example, export: bool = True) -> None:
    op = cls.model_validate(ex.params)
    shapes = list(ex.inputs)
    op.check_inputs(shapes)
    out = op.infer(shapes)
    module = single_op_module(op, shapes)
    y = module(*_inputs(shapes, BATCH))
    assert tuple(y.shape) == (BATCH, *out.dims), f"inferred {out}, got {tuple(y.shape)}"
    assert op.count_params(shapes) == sum(p.numel() for p in module.parameters()), "params"
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        module(*_inputs(shapes, 1))
    assert 2 * op.macs(shapes, out) == fc.get_total_flops(), "FLOPs (2 x macs)"
    check_receptive_field(op, module, shapes, out)
    if export:
        exported = torch.export.export(module, tuple(_inputs(shapes, BATCH)))
        xs = _inputs(shapes, BATCH)
        torch.testing.assert_close(exported.module()(*xs), module(*xs), equal_nan=True)


CASES = [(name, i) for name, cls in sorted(REGISTRY.items()) for i in range(len(cls.examples))]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_op_declares_examples_and_a_doc(name):
    cls = REGISTRY[name]
    assert cls.examples, f"{cls.__qualname__} declares no examples for the op contract"
    assert (cls.__doc__ or "").strip(), f"{cls.__qualname__} has no docstring"


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize(("name", "index"), CASES)
def test_op_contract(name, index):
    cls = REGISTRY[name]
    check_example(cls, cls.examples[index], export=index == 0)


def test_the_contract_catches_a_forgotten_cost():
    class FreeConv(Conv2d):  # a conv whose author forgot macs and count_params
        op = "free_conv"

        def macs(self, inputs, output):
            return 0

    class Unpaid(Conv2d):
        op = "unpaid_conv"

        def count_params(self, inputs):
            return 0

    ex = Conv2d.examples[0]
    with pytest.raises(AssertionError, match="FLOPs"):
        check_example(FreeConv, ex, export=False)
    with pytest.raises(AssertionError, match="params"):
        check_example(Unpaid, ex, export=False)


def test_the_contract_catches_a_wrong_window():
    class NarrowSight(Conv2d):  # claims a 1x1 field for a 3x3 conv
        op = "narrow_sight"

        def windows(self, inputs):
            return Window(), Window()

    with pytest.raises(AssertionError, match="axis 0"):
        check_example(NarrowSight, Conv2d.examples[0], export=False)


def test_an_op_without_examples_fails_the_registry_check():
    @register
    class Bare(Op):
        """An op someone registered without examples."""

        op = "bare_op_for_contract_test"

    try:
        with pytest.raises(AssertionError, match="declares no examples"):
            test_every_op_declares_examples_and_a_doc("bare_op_for_contract_test")
    finally:
        del REGISTRY["bare_op_for_contract_test"]
