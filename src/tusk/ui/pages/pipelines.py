"""Pipelines and jobs: specs and versions, jobs with timings and datum counts, datums with their logs; a failed
job shows its failing datum's error first. Stop and rerun are form posts that call the API routes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tusk.api._deps import Caller
from tusk.api.routes import jobs, pipelines
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


@router.post("/ui/pipelines/{name}/stop")
async def stop_pipeline(request: Request, name: str) -> Response:
    return await act(request, f"/ui/pipelines/{name}", "pipeline stopped",
                     lambda c, _: pipelines.stop_pipeline(name, c))


@router.post("/ui/pipelines/{name}/start")
async def start_pipeline(request: Request, name: str) -> Response:
    return await act(request, f"/ui/pipelines/{name}", "pipeline started",
                     lambda c, _: pipelines.start_pipeline(name, c))
