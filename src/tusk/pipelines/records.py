"""What the pipeline services return."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from tusk.versioning.records import InputCommit, _Record, checked_state

__all__ = ["DatumInfo", "DatumState", "JobInfo", "JobState", "PipelineInfo", "PipelineState", "datum_state",
           "input_commits", "job_state", "pipeline_state"]

# a job: created → running → success | failure; killed (stopped), unrunnable (an upstream job failed);
# interrupted (released by a Ctrl-C, claimable again at once)
JobState = Literal["created", "interrupted", "running", "success", "failure", "killed", "unrunnable"]
# a datum's recorded outcome; recovered: it failed, its err_cmd succeeded, its output is skipped
DatumState = Literal["success", "skipped", "failed", "recovered"]
PipelineState = Literal["running", "stopped"]


def job_state(text: str) -> JobState:
    return cast(JobState, checked_state(JobState, text, "job"))


def datum_state(text: str) -> DatumState:
    return cast(DatumState, checked_state(DatumState, text, "datum"))


def pipeline_state(text: str) -> PipelineState:
    return cast(PipelineState, checked_state(PipelineState, text, "pipeline"))



def input_commits(stored: str) -> list[InputCommit]:
    """A job's input commits as the job row stores them (JSON: ``[{name, repo, branch, commit}]``)."""
    import json

    return cast(list[InputCommit], json.loads(stored))


@dataclass(frozen=True)
class PipelineInfo(_Record):
    name: str
    version: int
    state: PipelineState
    description: str
    input_repos: list[str]
    created_by: str
    created_at: datetime
    spec: dict[str, Any]
    last_job: str | None = None
    last_job_state: JobState | None = None
    notes: list[str] = field(default_factory=list)  # warnings for the user (e.g. an image that is ignored here)
    code: dict[str, Any] | None = None  # the version's code: tree (stored digest), digest, files, git, dir
    # a spout's or service's process as its runner last recorded it (tusk.pipelines.long_running), else None
    process: dict[str, Any] | None = None


@dataclass(frozen=True)
class JobInfo(_Record):
    id: str
    pipeline: str
    pipeline_version: int
    global_id: str
    state: JobState
    reason: str | None
    input_commits: list[InputCommit]
    output_commit: str | None
    datums_total: int
    datums_processed: int
    datums_skipped: int
    datums_failed: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class DatumInfo(_Record):
    job: str
    id: str
    hash: str
    state: DatumState
    inputs: list[dict[str, str]]
    tries: int
    download_seconds: float
    process_seconds: float
    upload_seconds: float
    download_bytes: int
    upload_bytes: int
    error: str | None = None
    log: str = field(default="", repr=False)
