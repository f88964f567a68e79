from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from tusk.api._deps import Caller, CallerDep
from tusk.pipelines.records import DatumInfo, JobInfo
from tusk.versioning.refs import parse_file_ref

router = APIRouter(tags=["jobs"])
_JOB = "/api/v1/jobs/{job_id}"


class LogLine(BaseModel):
    job: str
    datum: str
    line: str


def _job(caller: Caller, job_id: str, role: str = "reader") -> JobInfo:
    info = caller.ops.inspect_job(job_id)
    caller.require_repo(info.pipeline, role)
    return info


@router.get("/api/v1/jobs")
def list_jobs(caller: CallerDep, pipeline: str | None = None, global_id: str | None = None) -> list[JobInfo]:
    return [j for j in caller.ops.list_jobs(pipeline, global_id) if caller.can(j.pipeline, "reader")]


@router.get(_JOB)
def inspect_job(job_id: str, caller: CallerDep) -> JobInfo:
    return _job(caller, job_id)


@router.post(_JOB + "/wait")
def wait_job(job_id: str, caller: CallerDep, timeout: float | None = None) -> JobInfo:
    _job(caller, job_id)
    return caller.ops.wait_job(job_id, timeout)


@router.post(_JOB + "/stop")
def stop_job(job_id: str, caller: CallerDep) -> JobInfo:
    _job(caller, job_id, "writer")
    return caller.ops.stop_job(job_id)


@router.get(_JOB + "/datums")
def list_datums(job_id: str, caller: CallerDep) -> list[DatumInfo]:
    _job(caller, job_id)
    return caller.ops.list_datums(job_id)


@router.get(_JOB + "/datums/{datum_id}")
def inspect_datum(job_id: str, datum_id: str, caller: CallerDep) -> DatumInfo:
    _job(caller, job_id)
    return caller.ops.inspect_datum(job_id, datum_id)


@router.get("/api/v1/logs")
def logs(caller: CallerDep, pipeline: str | None = None, job: str | None = None, datum: str | None = None,
         grep: str | None = None) -> list[LogLine]:
    """Datum log lines, filtered; only jobs of pipelines the caller may read."""
    if job is not None:
        _job(caller, job)
    elif pipeline is not None:
        caller.require_repo(pipeline, "reader")
    readable = {j.id for j in caller.ops.list_jobs(pipeline) if caller.can(j.pipeline, "reader")}
    return [LogLine(job=j, datum=d, line=line) for j, d, line in caller.ops.logs(pipeline, job, datum, grep)
            if j in readable]


@router.post("/api/v1/jobs/run-pending")
def run_pending_jobs(caller: CallerDep) -> list[JobInfo]:
    """Run every queued job now and wait for those other schedulers hold."""
    caller.require_admin()
    return caller.ops.services.jobs.drain()


@router.get("/api/v1/lineage")
def lineage(ref: str, caller: CallerDep) -> dict[str, Any]:
    """Upstream provenance and downstream results of ``repo@ref[:/path]``."""
    caller.require_repo(parse_file_ref(ref).repo, "reader")
    return caller.ops.lineage(ref)
