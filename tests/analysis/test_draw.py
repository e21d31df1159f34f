"""`archspec graph`: every format, every collapse level, readable zoo pictures."""

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from archspec.analysis.draw import draw, layout, picture, to_dot, to_mermaid
from archspec.analysis.groups import collapse, stages
from archspec.cli import app
from archspec.errors import ArchspecError
from archspec.graph import build_graph
from archspec.zoo import list_specs, spec_path

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def resnet50():
    return build_graph(spec_path("resnet50"))


def test_blocks_collapse_into_repeated_instances(resnet50):
    boxes = [(g.name, g.block, g.repeat) for g in collapse(resnet50, "block")]
    assert boxes[4:8] == [
        ("layer1.0", "bottleneck", 1),
        ("layer1.1-2", "bottleneck", 2),
        ("layer2.0", "bottleneck", 1),
        ("layer2.1-3", "bottleneck", 3),
    ]
    assert len(boxes) == 15
    names = [g.name for g in collapse(resnet50, "stage")]
    assert names == [
        "conv1",
        "bn1",
        "relu",
        "maxpool",
        *(f"layer{i}" for i in range(1, 5)),
        "avgpool",
        "9",
        "fc",
    ]
    assert len(collapse(resnet50, "none")) == len(resnet50)
    groups = collapse(resnet50, "block")
    assert sorted(n for g in groups for n in g.nodes) == sorted(stages(resnet50))


def test_parallel_branches_are_not_merged_and_get_their_own_columns():
    graph = build_graph(spec_path("googlenet"))
    names = [g.name for g in collapse(graph, "block")]
    assert [n for n in names if n.startswith("inception")] == [
        "inception3a",
        "inception3b",
        "inception4a",
        "inception4b",
        "inception4c",
        "inception4d",
        "inception4e",
        "inception5a",
        "inception5b",
    ]
    pic = picture(graph, "none")
    lay = layout(pic)
    (pool,) = [b.id for b in pic.boxes if b.title == "maxpool2"]
    branches = [lay.pos[b] for a, b in pic.edges if a == pool]  # the 4 inception branches
    assert len(branches) == 4
    assert len({y for _, y in branches}) == 1 and len({x for x, _ in branches}) == 4


@pytest.mark.parametrize("name", list_specs())
def test_zoo_pictures_stay_readable(name):
    pic = picture(build_graph(spec_path(name)))
    assert 3 <= len(pic.boxes) <= 40
    for box in pic.boxes:
        assert box.shape.startswith("(") and box.kind and box.title


def test_dot(resnet50, tmp_path):
    path = draw(resnet50, tmp_path / "r.dot")
    text = path.read_text()
    assert text.startswith('digraph "resnet50" {')
    assert text.count("->") == len(picture(resnet50).edges) == 15
    assert 'label="layer3.1-5\\nbottleneck x5\\n(1024,14,14)"' in text
    assert 'label="conv1\\nconv2d 7x7/2\\n(64,112,112)"' in text
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg", str(path)], check=True, capture_output=True)


def test_mermaid(resnet50, tmp_path):
    text = draw(resnet50, tmp_path / "r.mmd").read_text()
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert '  n10["layer3.1-5<br/>bottleneck x5<br/>(1024,14,14)"]' in lines
    assert sum("-->" in line for line in lines) == 15
    assert "  n9 --> n10" in lines


def test_svg_builtin(resnet50, tmp_path):
    path = draw(resnet50, tmp_path / "r.svg", engine="builtin")
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    assert len(root.findall(f".//{SVG}rect")) == 16
    assert len(root.findall(f"./{SVG}path")) == 15
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "bottleneck x5" in texts and "(2048,7,7)" in texts and "maxpool 3x3/2" in texts
    assert float(root.get("height")) > float(root.get("width"))  # a column, top to bottom


def test_svg_skip_edges_bow_around_the_boxes_they_skip(tmp_path):
    path = draw(spec_path("resnet18"), tmp_path / "r.svg", collapse_level="none", engine="builtin")
    root = ET.parse(path).getroot()
    curves = [p.get("d") for p in root.findall(f"./{SVG}path")]
    lefts = [float(r.get("x")) for r in root.findall(f".//{SVG}rect")]
    bowed = [d for d in curves if float(d.split("C")[1].split()[0].split(",")[0]) < min(lefts)]
    assert len(bowed) == 5  # the identity shortcuts of resnet18 (the other 3 have projections)


def test_png_builtin(resnet50, tmp_path):
    import matplotlib.image

    path = draw(resnet50, tmp_path / "r.png", engine="builtin")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.shape[0] > image.shape[1] > 100
    assert image[..., :3].std() > 0.05  # something was drawn


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")
def test_graphviz_engine(resnet50, tmp_path):
    path = draw(resnet50, tmp_path / "r.svg", engine="graphviz")
    assert ET.parse(path).getroot().tag == f"{SVG}svg"


def test_bad_requests(resnet50, tmp_path):
    with pytest.raises(ArchspecError, match=re.escape("must end in .dot, .gv, .mmd, .svg, .png")):
        draw(resnet50, tmp_path / "r.jpg")
    with pytest.raises(ArchspecError, match="--collapse must be one of"):
        draw(resnet50, tmp_path / "r.dot", collapse_level="layer")
    if shutil.which("dot") is None:
        with pytest.raises(ArchspecError, match="`dot` program is not installed"):
            draw(resnet50, tmp_path / "r.svg", engine="graphviz")


runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _commands():
    from archspec.cli import analysis  # noqa: F401


def test_cli(tmp_path):
    out = tmp_path / "d.mmd"
    result = runner.invoke(app, ["graph", "densenet121", "-o", str(out), "--collapse", "stage"])
    assert result.exit_code == 0, result.output
    assert '["features.denseblock3<br/>dense_layer x24<br/>(1024,14,14)"]' in out.read_text()
    result = runner.invoke(app, ["graph", "resnet18", "-o", str(tmp_path / "x.txt")])
    assert result.exit_code == 1 and "must end in" in result.output
    for dot, mermaid in [(to_dot, "digraph"), (to_mermaid, "flowchart")]:
        assert dot(picture(build_graph(spec_path("resnet18")))).startswith(mermaid)
