"""What the pipeline services return."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tusk.versioning.records import _Record

__all__ = ["DatumInfo", "JobInfo", "PipelineInfo"]


@dataclass(frozen=True)
class PipelineInfo(_Record):
    name: str
    version: int
    state: str
    description: str
    input_repos: list[str]
    created_by: str
    created_at: datetime
    spec: dict[str, Any]
    last_job: str | None = None
    last_job_state: str | None = None
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
    state: str
    reason: str | None
    input_commits: list[dict[str, str]]
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
    state: str
    inputs: list[dict[str, str]]
    tries: int
    download_seconds: float
    process_seconds: float
    upload_seconds: float
    download_bytes: int
    upload_bytes: int
    error: str | None = None
    log: str = field(default="", repr=False)
