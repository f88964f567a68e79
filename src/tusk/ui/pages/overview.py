"""Overview: every repo and pipeline the caller may read, as a graph from inputs to outputs, refreshed live."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tusk.api._deps import Caller
from tusk.api.routes import jobs as api_jobs
from tusk.api.routes import pipelines as api_pipelines
from tusk.api.routes import repos as api_repos
from tusk.errors import JobNotFound
from tusk.ui._web import page, render
from tusk.ui.dag import Graph, Node, render_svg

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_LIVE = {"created", "interrupted", "running"}  # a job still to finish: keep refreshing


def _summary(caller: Caller) -> dict[str, Any]:
    repos = api_repos.list_repos(caller)
    pipelines = api_pipelines.list_pipelines(caller)
    names = {p.name for p in pipelines}
    graph = Graph()
    rows = []
    for r in repos:
        if r.name not in names:
            graph.add(Node(r.name, r.name, f"{len(r.branches)} branch(es)", f"/ui/repos/{r.name}", "repo"))
    live = False
    for p in pipelines:
        job = None
        if p.last_job:
            try:
                job = api_jobs.inspect_job(p.last_job, caller)
            except JobNotFound:
                job = None
        state = job.state if job else (p.last_job_state or "no job")
        live = live or state in _LIVE
        datums = (f"{job.datums_processed + job.datums_skipped}/{job.datums_total} datums"
                  + (f", {job.datums_failed} failed" if job.datums_failed else "")) if job else ""
        graph.add(Node(p.name, p.name, f"{state} · {datums}" if datums else state, f"/ui/pipelines/{p.name}",
                       "pipeline", state))
        rows.append({"pipeline": p, "job": job, "state": state, "datums": datums})
    for p in pipelines:
        for src in p.input_repos:
            graph.link(src, p.name)
    return {"svg": render_svg(graph, "Repos and pipelines, inputs on the left"), "rows": rows, "live": live,
            "repos": repos, "empty": not graph.nodes}


@router.get("/")
def overview(request: Request) -> Response:
    return page(request, lambda caller: render(request, "overview/index.html", title="Overview",
                                               **_summary(caller)))


@router.get("/ui/overview/graph")
def overview_graph(request: Request) -> Response:
    """The graph and the pipeline table alone: what the overview swaps in every few seconds."""
    return page(request, lambda caller: render(request, "overview/_graph.html", **_summary(caller)))
