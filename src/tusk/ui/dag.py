"""A layered left-to-right layout of a directed graph, drawn as inline SVG on the server.

Used for the overview (repos and pipelines), for lineage (commits) and for a global id (the overview, with what
one commit set touched highlighted). Layers are longest paths from the sources; within a layer, nodes are ordered
by the mean position of their parents (one sweep), then by name, which keeps edges short without a layout engine.
The SVG has no ``xmlns`` (it is inline HTML) and no style attributes (the page's stylesheet colours it by class),
so a strict CSP holds.

A highlighted graph (some node with ``touched`` set) is readable without colour: a touched node carries a visible
"✓" marker and a thick border, an untouched one the words "not in this set" and a dashed border; a touched edge is
thick and solid, an untouched one thin and dashed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from markupsafe import Markup, escape

__all__ = ["Graph", "Node", "render_svg"]

NODE_W = 220  # room for REPO@COMMIT8 in bold (lineage), about 9 px a character
NODE_H = 58
GAP_X = 80
GAP_Y = 22
PAD = 12


@dataclass
class Node:
    id: str
    label: str
    detail: str = ""  # a second line: state, datum counts, a commit id
    href: str | None = None
    kind: str = "repo"  # repo | pipeline | commit: the CSS class that colours it
    state: str | None = None  # a job or commit state: another CSS class
    touched: bool | None = None  # highlighting: True/False on a highlighted graph, None on a plain one


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: set[tuple[str, str]] = field(default_factory=set)
    touched_edges: set[tuple[str, str]] = field(default_factory=set)  # highlighted, among ``edges``

    def add(self, node: Node) -> None:
        self.nodes.setdefault(node.id, node)

    def link(self, src: str, dst: str, touched: bool = False) -> None:
        if src != dst and src in self.nodes and dst in self.nodes:
            self.edges.add((src, dst))
            if touched:
                self.touched_edges.add((src, dst))

    def layers(self) -> list[list[str]]:
        parents: dict[str, list[str]] = {n: [] for n in self.nodes}
        for src, dst in self.edges:
            parents[dst].append(src)
        depth: dict[str, int] = {}

        def level(n: str, seen: frozenset[str]) -> int:
            if n in depth:
                return depth[n]
            if n in seen:  # a cycle (should not happen): cut it here
                return 0
            d = 1 + max((level(p, seen | {n}) for p in parents[n]), default=-1)
            depth[n] = d
            return d

        for n in sorted(self.nodes):
            level(n, frozenset())
        out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for n in sorted(self.nodes):
            out[depth[n]].append(n)
        position: dict[str, float] = {}
        for layer in out:
            def key(n: str) -> tuple[float, str]:
                ps = [position[p] for p in parents[n] if p in position]
                return (sum(ps) / len(ps) if ps else 0.0, n)
            layer.sort(key=key)
            for i, n in enumerate(layer):
                position[n] = float(i)
        return out


def _trim(text: str, width: int = 26) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_svg(graph: Graph, title: str) -> Markup:
    """The graph as an ``<svg>`` with a link per node (keyboard-focusable, with an accessible name)."""
    layers = graph.layers()
    tallest = max((len(layer) for layer in layers), default=0)
    width = PAD * 2 + max(len(layers), 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(tallest, 1) * (NODE_H + GAP_Y) - GAP_Y
    where: dict[str, tuple[int, int]] = {}
    for col, layer in enumerate(layers):
        offset = (tallest - len(layer)) * (NODE_H + GAP_Y) // 2
        for row, n in enumerate(layer):
            where[n] = (PAD + col * (NODE_W + GAP_X), PAD + offset + row * (NODE_H + GAP_Y))
    parts = [f'<svg class="dag" role="group" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker>'
             '<marker id="arrow-touched" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead touched"/></marker>'
             '</defs>']
    highlighted = any(node.touched is not None for node in graph.nodes.values())
    for src, dst in sorted(graph.edges):
        (x1, y1), (x2, y2) = where[src], where[dst]
        sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
        mid = (sx + ex) // 2
        hot = (src, dst) in graph.touched_edges
        kind = "edge touched" if hot else "edge untouched" if highlighted else "edge"
        parts.append(f'<path class="{kind}" d="M {sx} {sy} C {mid} {sy}, {mid} {ey}, {ex} {ey}" '
                     f'marker-end="url(#{"arrow-touched" if hot else "arrow"})"/>')
    for n, (x, y) in sorted(where.items()):
        node = graph.nodes[n]
        classes = f"node {escape(node.kind)}" + (f" state-{escape(node.state)}" if node.state else "")
        text = _trim(node.label)
        if node.touched is not None:
            classes += " touched" if node.touched else " untouched"
            text = _trim(f"✓ {node.label}" if node.touched else node.label)
        label = f"{node.kind} {node.label}" + (f", {node.detail}" if node.detail else "")
        body = (f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
                f'<text x="{x + 10}" y="{y + 23}" class="label">{escape(text)}</text>'
                f'<text x="{x + 10}" y="{y + 44}" class="detail">{escape(_trim(node.detail, 30))}</text>')
        if node.href:  # (its name is its visible text: a label that differs fails WCAG 2.5.3)
            parts.append(f'<a href="{escape(node.href)}" class="{classes}">{body}</a>')
        else:
            parts.append(f'<g class="{classes}" role="img" aria-label="{escape(label)}">'
                         f'<title>{escape(label)}</title>{body}</g>')
    parts.append("</svg>")
    return Markup("".join(parts))
