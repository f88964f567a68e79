from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from tusk.api._deps import Caller, CallerDep, Limit, Offset, Timeout
from tusk.errors import AmbiguousId, JobNotFound
from tusk.pipelines.records import DatumInfo, JobInfo
from tusk.versioning.refs import parse_file_ref

router = APIRouter(tags=["jobs"])
_JOB = "/api/v1/jobs/{job_id}"


class LogLine(BaseModel):
    job: str
    datum: str
    line: str


def _job(caller: Caller, job_id: str, role: str = "reader") -> JobInfo:
    """The job, as the caller may see it. A job of a pipeline the caller may not read is missing, in the
    words of a missing job: naming its pipeline would leak the pipeline's name. A short id is looked up among
    the jobs the caller may see."""
    try:
        info = caller.ops.inspect_job(job_id)
    except AmbiguousId as exc:
        info = caller.ops.inspect_job(caller.unambiguous(
            exc, lambda j: caller.can(caller.ops.inspect_job(j).pipeline, "reader"),
            JobNotFound(f"job {job_id} not found")))
    if not caller.can(info.pipeline, "reader"):
        raise JobNotFound(f"job {job_id} not found")
    caller.require_repo(info.pipeline, role)
    return _visible_job(caller, info)


def _visible_job(caller: Caller, info: JobInfo) -> JobInfo:
    return replace(info, input_commits=caller.readable(info.input_commits)) if caller.state.auth else info


def _visible_datum(caller: Caller, info: DatumInfo) -> DatumInfo:
    return replace(info, inputs=caller.readable(info.inputs)) if caller.state.auth else info


def _prune(caller: Caller, node: dict[str, Any], key: str) -> dict[str, Any]:
    """Drop the lineage nodes (and all below them) in repos the caller may not read."""
    node[key] = [_prune(caller, n, key) for n in node.get(key, []) if caller.can(str(n.get("repo", "")), "reader")]
    return node


@router.get("/api/v1/jobs")
def list_jobs(caller: CallerDep, pipeline: str | None = None, global_id: str | None = None, limit: Limit = None,
              offset: Offset = 0) -> list[JobInfo]:
    """Newest first, of the pipelines the caller may read. A page: ``offset`` and ``limit``."""
    if global_id is not None:
        global_id = caller.global_id(global_id)
    if pipeline is not None or not caller.state.auth:  # every job listed is readable, or none: page in SQL
        if pipeline is not None and not caller.can(pipeline, "reader"):
            return []
        return [_visible_job(caller, j) for j in caller.ops.list_jobs(pipeline, global_id, limit, offset)]
    readable = [_visible_job(caller, j) for j in caller.ops.list_jobs(None, global_id)
                if caller.can(j.pipeline, "reader")]
    return readable[offset:offset + limit if limit else None]


@router.get(_JOB)
def inspect_job(job_id: str, caller: CallerDep) -> JobInfo:
    return _job(caller, job_id)


@router.post(_JOB + "/wait")
def wait_job(job_id: str, caller: CallerDep, timeout: Timeout = None) -> JobInfo:
    job_id = _job(caller, job_id).id
    return _visible_job(caller, caller.ops.wait_job(job_id, timeout))


@router.post(_JOB + "/stop")
def stop_job(job_id: str, caller: CallerDep) -> JobInfo:
    job_id = _job(caller, job_id, "writer").id
    return _visible_job(caller, caller.ops.stop_job(job_id))


@router.get(_JOB + "/datums")
def list_datums(job_id: str, caller: CallerDep, limit: Limit = None, offset: Offset = 0,
                failed_first: Annotated[bool, Query(description="the failed datums, and those with an error, "
                                                                "first")] = False) -> list[DatumInfo]:
    """By datum id (or failures first). A page: ``offset`` and ``limit``."""
    job_id = _job(caller, job_id).id
    return [_visible_datum(caller, d) for d in caller.ops.list_datums(job_id, limit, offset, failed_first)]


@router.get(_JOB + "/datums/{datum_id}")
def inspect_datum(job_id: str, datum_id: str, caller: CallerDep) -> DatumInfo:
    job_id = _job(caller, job_id).id
    return _visible_datum(caller, caller.ops.inspect_datum(job_id, datum_id))


@router.get("/api/v1/logs")
def logs(caller: CallerDep, pipeline: str | None = None, job: str | None = None, datum: str | None = None,
         grep: str | None = None) -> list[LogLine]:
    """Datum log lines, filtered; only jobs of pipelines the caller may read."""
    if job is not None:
        job = _job(caller, job).id
    elif pipeline is not None:
        caller.require_repo(pipeline, "reader")
    readable = {j.id for j in caller.ops.list_jobs(pipeline) if caller.can(j.pipeline, "reader")}
    if pipeline is not None:  # (checked above) a spout's or service's process log
        readable |= {"spout", "service"}
    return [LogLine(job=j, datum=d, line=line) for j, d, line in caller.ops.logs(pipeline, job, datum, grep)
            if j in readable]


@router.post("/api/v1/jobs/run-pending")
def run_pending_jobs(caller: CallerDep) -> list[JobInfo]:
    """Run every queued job now and wait for those other schedulers hold."""
    caller.require_admin()
    return caller.ops.run_pending_jobs(wait_for_held=True)


@router.get("/api/v1/lineage")
def lineage(ref: str, caller: CallerDep) -> dict[str, Any]:
    """Upstream provenance and downstream results of ``repo@ref[:/path]``."""
    caller.require_repo(parse_file_ref(ref).repo, "reader")
    found = caller.ops.lineage(ref)
    if caller.state.auth:
        _prune(caller, found["upstream"], "inputs")
        _prune(caller, found["downstream"], "outputs")
        if found.get("datum"):
            found["datum"]["inputs"] = caller.readable(found["datum"].get("inputs", []))
    return found
