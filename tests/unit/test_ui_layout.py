"""The dashboard's server-side drawings: graph layout, charts and file previews (no browser needed)."""

from __future__ import annotations

from tusk.ui.charts import line_chart
from tusk.ui.dag import Graph, Node, render_svg
from tusk.ui.preview import LIMIT, preview


def test_layers_run_from_inputs_to_outputs_and_every_node_links() -> None:
    g = Graph()
    for name in ("raw", "clean", "train", "report"):
        g.add(Node(name, name, href=f"/ui/repos/{name}"))
    g.link("raw", "clean")
    g.link("clean", "train")
    g.link("raw", "report")
    g.link("train", "report")
    assert g.layers() == [["raw"], ["clean"], ["train"], ["report"]]
    svg = str(render_svg(g, "a <graph>"))
    assert svg.count("<a href=") == 4 and svg.count('class="edge"') == 4
    assert "a &lt;graph&gt;" in svg and "http" not in svg  # escaped, and no xmlns or outside URL


def test_a_highlighted_graph_marks_what_was_touched_in_text_not_only_colour() -> None:
    g = Graph()
    g.add(Node("raw", "raw", "commit abc", "/ui/repos/raw/browse/abc/", touched=True))
    g.add(Node("train", "train", "job def · success", "/ui/jobs/def", "pipeline", "success", touched=True))
    g.add(Node("other", "other", "not in this set", "/ui/pipelines/other", "pipeline", touched=False))
    g.link("raw", "train", touched=True)
    g.link("raw", "other")
    svg = str(render_svg(g, "what a global id touched"))
    assert ">✓ raw</text>" in svg and ">✓ train</text>" in svg and ">other</text>" in svg  # the marker is text
    assert 'class="node pipeline state-success touched"' in svg and 'class="node pipeline untouched"' in svg
    assert svg.count('class="edge touched"') == 1 and svg.count('class="edge untouched"') == 1
    plain = Graph()
    plain.add(Node("raw", "raw"))
    assert "touched" not in str(render_svg(plain, "a plain graph")).split("</defs>", 1)[1]


def test_a_cycle_does_not_hang_the_layout() -> None:
    g = Graph()
    g.add(Node("a", "a"))
    g.add(Node("b", "b"))
    g.link("a", "b")
    g.link("b", "a")
    assert sorted(n for layer in g.layers() for n in layer) == ["a", "b"]


def test_a_chart_names_every_value_for_screen_readers() -> None:
    svg = str(line_chart("r2", ["v1", "v2", "v3"], [0.5, None, 0.75]))
    assert 'aria-label="r2 by version: v1: 0.5, v2: none, v3: 0.75"' in svg
    assert svg.count("<circle") == 2


def test_a_chart_over_time_says_so_and_a_fixed_scale_keeps_its_axis() -> None:
    svg = str(line_chart("drift p-value of x", ["-2s", "now"], [0.25, 0.5], "time", (0.0, 1.0)))
    assert 'aria-label="drift p-value of x by time: -2s: 0.25, now: 0.5"' in svg
    assert ">1</text>" in svg and ">0</text>" in svg  # the axis runs 0 to 1, not 0.25 to 0.5


def test_previews_by_kind() -> None:
    assert preview("/a.csv", [b"x,y\n1,2\n"]).rows == [["x", "y"], ["1", "2"]]
    assert preview("/a.tsv", [b"x\ty\n"]).rows == [["x", "y"]]
    assert preview("/a.json", [b'{"b":1,"a":2}']).text == '{\n  "a": 2,\n  "b": 1\n}'
    assert preview("/a.txt", [b"hello"]).kind == "text"
    assert preview("/a.png", [b"\x89PNG"]).kind == "image"
    assert preview("/a.bin", [b"\x00\x01\xff"]).kind == "binary"
    big = preview("/big.txt", [b"a" * LIMIT, b"b" * 10])
    assert big.cut and len(big.text) == LIMIT
    assert preview("/utf.txt", [b"a" * (LIMIT - 1) + "é".encode()]).kind == "text"  # cut inside a character
