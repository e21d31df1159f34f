"""`archspec summary`: stage subtotals that add up, in all three formats."""

import json

import pytest
from rich.console import Console

from archspec.analysis.cost import analyze
from archspec.analysis.groups import stages
from archspec.analysis.summary import render_summary, stage_runs
from archspec.errors import ArchspecError
from archspec.graph import build_graph
from archspec.zoo import list_specs, spec_path


@pytest.mark.parametrize("name", list_specs())
def test_stage_subtotals_add_up_to_the_totals(name):
    graph = build_graph(spec_path(name))
    report = analyze(graph)
    runs = stage_runs(report, stages(graph))
    assert sum(s.params for s in runs) == report.params
    assert sum(s.macs for s in runs) == report.macs
    assert sum(s.activation_bytes for s in runs) == report.activation_bytes
    assert [n for s in runs for n in s.nodes] == list(report.nodes)
    assert len({s.name for s in runs}) == len(runs)  # a stage is one run of nodes


def test_resnet50_stages():
    graph = build_graph(spec_path("resnet50"))
    report = analyze(graph)
    runs = {s.name: s for s in stage_runs(report, stages(graph))}
    assert list(runs) == [
        "conv1",
        "bn1",
        "relu",
        "maxpool",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "avgpool",
        "9",
        "fc",
    ]
    layer3 = runs["layer3"]
    assert layer3.params == sum(
        c.params for n, c in report.nodes.items() if n.startswith("layer3.")
    )
    assert layer3.output.shape.dims == (1024, 14, 14)


def test_markdown_has_a_subtotal_row_per_stage():
    text = render_summary("resnet50", fmt="markdown")
    rows = text.splitlines()
    assert "| **layer3 total** | **62 nodes** | **(1024,14,14)** | **7,098,368** |" in text
    # the subtotal comes right after the stage's last node
    last = next(i for i, r in enumerate(rows) if r.startswith("| layer3.5.9 | relu |"))
    assert rows[last + 1].startswith("| **layer3 total**")
    assert rows[-1].startswith("| **total** |  | **(1000)** | **25,557,032** |")
    compact = render_summary("resnet50", fmt="markdown", stages_only=True).splitlines()
    assert len(compact) == 2 + 11 + 1


def test_json_has_stages():
    data = json.loads(render_summary("vit_b_16", fmt="json"))
    names = [s["name"] for s in data["stages"]]
    assert "encoder.layers" in names
    layers = data["stages"][names.index("encoder.layers")]
    assert layers["nodes"] == 84 and layers["shape"] == [197, 768]
    assert sum(s["flops"] for s in data["stages"]) == data["flops"]


def test_table():
    console = Console(record=True, width=200)
    assert render_summary("resnet18", console=console) is None
    text = console.export_text()
    assert "layer4 total" in text and "11,689,512" in text and "MFLOPs" in text


def test_bad_format():
    with pytest.raises(ArchspecError, match="--format must be table, json or markdown"):
        render_summary("resnet18", fmt="csv")


@pytest.mark.parametrize(
    ("layers", "outputs", "total"),
    [
        (
            "  - {op: conv2d, name: a, out_channels: 4, kernel_size: 1}\n",
            "[a, input]",
            "(4,8,8) (3,8,8)",
        ),
        (
            "  - {op: conv2d, name: a, out_channels: 4, kernel_size: 1, when: false}\n",
            None,
            "(3,8,8)",
        ),
    ],
    ids=["input-as-an-output", "every-layer-removed"],
)
def test_an_output_that_is_the_input_itself(tmp_path, layers, outputs, total):
    path = tmp_path / "net.yaml"
    text = "name: net\ninput: {channels: 3, size: 8}\nlayers:\n" + layers
    path.write_text(text + (f"outputs: {outputs}\n" if outputs else ""))
    console = Console(record=True, width=200)
    render_summary(str(path), console=console)
    render_summary(str(path), stages_only=True, console=console)
    assert total in console.export_text()
    report = analyze(str(path))
    assert report.receptive_field.size == 1  # a 1x1 conv, or the input itself
    assert [str(s) for s in report.output_shapes] == total.split()
