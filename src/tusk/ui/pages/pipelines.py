"""Pipelines and jobs: specs and versions (with a diff between any two), jobs with timings and datum counts, datums
with their logs; a failed job shows its failing datum's error first. Stop, rerun and reprocess are form posts
that call the API routes."""

from __future__ import annotations

import difflib
import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tusk.api._deps import Caller
from tusk.api.routes import jobs, pipelines
from tusk.errors import InvalidArgument, NotFound
from tusk.ui._web import PAGE, act, page, page_of, render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/ui/pipelines")
def pipeline_list(request: Request) -> Response:
    def build(caller: Caller) -> Response:
        found = page_of(request, lambda at, n: pipelines.list_pipelines(caller)[at:at + n])
        return render(request, "pipelines/list.html", title="Pipelines", pager=found)
    return page(request, build)


@router.get("/ui/pipelines/{name}")
def pipeline_page(request: Request, name: str) -> Response:
    def build(caller: Caller) -> Response:
        info = pipelines.inspect_pipeline(name, caller)
        versions = pipelines.pipeline_versions(name, caller)
        found = page_of(request, lambda at, n: jobs.list_jobs(caller, name, limit=n, offset=at))
        return render(request, "pipelines/pipeline.html", title=f"Pipeline {name}", pipeline=info,
                      versions=versions, pager=found, owner=caller.can(name, "owner"))
    return page(request, build)


def canonical(spec: dict[str, Any]) -> list[str]:
    """A spec's canonical JSON (sorted keys, two-space indent), line by line: what the diff compares."""
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False, default=str).splitlines()


def spec_diff(old: dict[str, Any], new: dict[str, Any], old_label: str, new_label: str) -> list[tuple[str, str]]:
    """The unified diff of two specs' canonical JSON, as (kind, line): kind is ``hunk``, ``del``, ``ins`` or
    ``same``; each line keeps its ``-``/``+``/space prefix, so the change is in the text, not only its colour."""
    out: list[tuple[str, str]] = []
    for line in difflib.unified_diff(canonical(old), canonical(new), old_label, new_label, lineterm=""):
        if line.startswith(("---", "+++")):
            continue
        kind = {"@": "hunk", "-": "del", "+": "ins"}.get(line[:1], "same")
        out.append((kind, line))
    return out


def _version_number(text: str | None, what: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"{what}={text!r} is not a version number: give one of the pipeline's versions "
                              "(1, 2, ...)") from None


@router.get("/ui/pipelines/{name}/diff")
def pipeline_diff(request: Request, name: str) -> Response:
    """What changed in the spec from version ``old`` (default: the one before ``new``) to ``new`` (default: the
    current one)."""
    def build(caller: Caller) -> Response:
        versions = {int(v["version"]): v for v in pipelines.pipeline_versions(name, caller)}
        new = _version_number(request.query_params.get("new"), "new") or max(versions)
        old = _version_number(request.query_params.get("old"), "old") or max([v for v in versions if v < new],
                                                                            default=new)
        for n in (old, new):
            if n not in versions:
                raise NotFound(f"pipeline {name} has no version {n} (it has {', '.join(map(str, sorted(versions)))})")
        lines = spec_diff(versions[old]["spec"], versions[new]["spec"], f"version {old}", f"version {new}")
        return render(request, "pipelines/diff.html", title=f"Spec diff of {name}", name=name, old=old, new=new,
                      numbers=sorted(versions), lines=lines, added=sum(k == "ins" for k, _ in lines),
                      removed=sum(k == "del" for k, _ in lines))
    return page(request, build)


@router.get("/ui/jobs/{job_id}")
def job_page(request: Request, job_id: str) -> Response:
    def build(caller: Caller) -> Response:
        job = jobs.inspect_job(job_id, caller)
        first = jobs.list_datums(job.id, caller, limit=1, failed_first=True)  # failures first: the first one
        failed = [d for d in first if d.state == "failed" or d.error]
        found = page_of(request, lambda at, n: jobs.list_datums(job.id, caller, limit=n, offset=at,
                                                                failed_first=True), PAGE * 2)
        return render(request, "pipelines/job.html", title=f"Job {job.id[:12]}", job=job, failed=failed,
                      pager=found, writer=caller.can(job.pipeline, "writer"))
    return page(request, build)


@router.get("/ui/jobs/{job_id}/datums/{datum_id}")
def datum_page(request: Request, job_id: str, datum_id: str) -> Response:
    def build(caller: Caller) -> Response:
        job = jobs.inspect_job(job_id, caller)
        datum = jobs.inspect_datum(job.id, datum_id, caller)
        lines = [x.line for x in jobs.logs(caller, job=job.id, datum=datum.id)]
        return render(request, "pipelines/datum.html", title=f"Datum {datum.id[:12]}", job=job, datum=datum,
                      lines=lines)
    return page(request, build)


@router.post("/ui/jobs/{job_id}/stop")
async def stop_job(request: Request, job_id: str) -> Response:
    return await act(request, f"/ui/jobs/{job_id}", "job stopped", lambda c, _: jobs.stop_job(job_id, c))


@router.post("/ui/pipelines/{name}/rerun")
async def rerun(request: Request, name: str) -> Response:
    return await act(request, f"/ui/pipelines/{name}", "rerun started",
                     lambda c, _: pipelines.rerun_pipeline(name, pipelines.Reprocess(), c))


@router.post("/ui/pipelines/{name}/reprocess")
async def reprocess(request: Request, name: str) -> Response:
    """``rerun --reprocess``: a new job that processes every datum again instead of skipping those done."""
    return await act(request, f"/ui/pipelines/{name}", "reprocess started: every datum runs again",
                     lambda c, _: pipelines.rerun_pipeline(name, pipelines.Reprocess(reprocess=True), c))


@router.post("/ui/pipelines/{name}/stop")
async def stop_pipeline(request: Request, name: str) -> Response:
    return await act(request, f"/ui/pipelines/{name}", "pipeline stopped",
                     lambda c, _: pipelines.stop_pipeline(name, c))


@router.post("/ui/pipelines/{name}/start")
async def start_pipeline(request: Request, name: str) -> Response:
    return await act(request, f"/ui/pipelines/{name}", "pipeline started",
                     lambda c, _: pipelines.start_pipeline(name, c))
