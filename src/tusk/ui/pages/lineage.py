"""Lineage: a commit's inputs (upstream) and what was computed from it (downstream), as one graph."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tusk.api._deps import Caller
from tusk.api.routes import jobs
from tusk.ids import short_id
from tusk.ui._web import page, render
from tusk.ui.dag import Graph, Node, render_svg

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _node(graph: Graph, n: dict[str, Any]) -> str:
    key = f"{n.get('repo')}@{n.get('commit')}"
    detail = str(n.get("state", ""))
    if n.get("pipeline"):
        detail += f" · job {short_id(str(n.get('job', '')))}"
    graph.add(Node(key, f"{n.get('repo')}@{short_id(str(n.get('commit', '')))}", detail,
                   f"/ui/repos/{n.get('repo')}/browse/{n.get('commit')}/", "commit", str(n.get("state", ""))))
    return key


def _walk(graph: Graph, n: dict[str, Any], key: str, up: bool) -> str:
    here = _node(graph, n)
    for child in n.get(key, []):
        there = _walk(graph, child, key, up)
        graph.link(there, here) if up else graph.link(here, there)
    return here


@router.get("/ui/lineage")
def lineage_page(request: Request) -> Response:
    ref = request.query_params.get("ref", "").strip()

    def build(caller: Caller) -> Response:
        if not ref:
            return render(request, "lineage/index.html", title="Lineage", ref="", svg=None, found=None)
        found = jobs.lineage(ref, caller)
        graph = Graph()
        _walk(graph, found["upstream"], "inputs", True)
        _walk(graph, found["downstream"], "outputs", False)
        return render(request, "lineage/index.html", title=f"Lineage of {ref}", ref=ref, found=found,
                      svg=render_svg(graph, f"Lineage of {ref}: inputs on the left, results on the right"))
    return page(request, build)
