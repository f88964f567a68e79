"""Overview: every repo and pipeline the caller may read, as a graph from inputs to outputs, refreshed live; and
the same graph for one global id, with the commits and jobs that commit set holds highlighted."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tusk.api._deps import Caller
from tusk.api.routes import commits as api_commits
from tusk.api.routes import jobs as api_jobs
from tusk.api.routes import pipelines as api_pipelines
from tusk.api.routes import repos as api_repos
from tusk.errors import JobNotFound
from tusk.ids import short_id
from tusk.pipelines.records import JobInfo
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


def _touched(caller: Caller, commits: list[Any], jobs: list[JobInfo]) -> tuple[Graph, list[dict[str, Any]]]:
    """The overview's graph with what one commit set touched marked: a repo with a commit in the set, a pipeline
    with a job of it, and the edge from an input repo the set committed to into a pipeline the set ran. Touched
    nodes link to their commit or job; the rows list each node's commit and job."""
    repos = api_repos.list_repos(caller)
    pipelines = api_pipelines.list_pipelines(caller)
    names = {p.name for p in pipelines}
    commit_of = {c.repo: c for c in commits}
    job_of = {j.pipeline: j for j in jobs}
    graph = Graph()
    rows = []
    for r in repos:
        if r.name in names:
            continue
        c = commit_of.get(r.name)
        if c is None:
            graph.add(Node(r.name, r.name, "not in this set", f"/ui/repos/{r.name}", "repo", touched=False))
            continue
        graph.add(Node(r.name, r.name, f"commit {short_id(c.id)} · {c.state}", f"/ui/repos/{r.name}/browse/{c.id}/",
                       "repo", touched=True))
        rows.append({"name": r.name, "kind": "repo", "commit": c, "job": None})
    for p in pipelines:
        c, j = commit_of.get(p.name), job_of.get(p.name)
        if c is None and j is None:
            graph.add(Node(p.name, p.name, "not in this set", f"/ui/pipelines/{p.name}", "pipeline", touched=False))
            continue
        state = j.state if j else c.state if c else ""
        detail = f"job {short_id(j.id)} · {j.state}" if j else f"commit {short_id(c.id)}" if c else ""
        href = f"/ui/jobs/{j.id}" if j else f"/ui/repos/{p.name}/browse/{c.id}/" if c else None
        graph.add(Node(p.name, p.name, detail, href, "pipeline", state, touched=True))
        rows.append({"name": p.name, "kind": "pipeline", "commit": c, "job": j})
    for p in pipelines:
        for src in p.input_repos:
            graph.link(src, p.name, touched=p.name in job_of and src in commit_of)
    # commits in repos that are no longer on the graph (deleted repos, spec repos) are still listed
    shown = {row["name"] for row in rows}
    rows += [{"name": c.repo, "kind": "repo", "commit": c, "job": None} for c in commits if c.repo not in shown]
    return graph, rows


@router.get("/ui/global/{global_id}")
def global_id_page(request: Request, global_id: str) -> Response:
    """Every commit and job one global id (a commit set: a user's commit and all it caused) holds, on the DAG."""
    def build(caller: Caller) -> Response:
        commits = api_commits.inspect_commit_set(global_id, caller)
        full = commits[0].global_id
        jobs = api_jobs.list_jobs(caller, global_id=full)
        graph, rows = _touched(caller, commits, jobs)
        origin = min(commits, key=lambda c: c.started_at)
        return render(request, "overview/global.html", title=f"Global id {short_id(full)}", global_id=full,
                      origin=origin, rows=rows, commits=commits, jobs=jobs,
                      svg=render_svg(graph, f"What global id {short_id(full)} touched: marked ✓, inputs on the left"))
    return page(request, build)
