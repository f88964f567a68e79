"""Lineage: where a commit came from (upstream) and what was computed from it (downstream)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tusk.storage.metadata import CommitProvenanceRow, CommitRow, JobRow, PipelineRow, RepoRow
from tusk.versioning.commits import CommitService
from tusk.versioning.context import Context

__all__ = ["lineage"]

_MAX_DEPTH = 64


def _node(s: Session, row: CommitRow) -> dict[str, Any]:
    repo = s.get(RepoRow, row.repo_id)
    node: dict[str, Any] = {"repo": repo.name if repo else "?", "branch": row.branch, "commit": row.id,
                            "origin": row.origin, "global_id": row.commit_set_id, "state": row.state}
    if row.job_id:
        job = s.get(JobRow, row.job_id)
        if job is not None:
            pipeline = s.get(PipelineRow, job.pipeline_id)
            node["job"] = job.id
            node["pipeline"] = pipeline.name if pipeline else "?"
            node["pipeline_version"] = job.pipeline_version
    return node


def _upstream(s: Session, row: CommitRow, depth: int) -> dict[str, Any]:
    node = _node(s, row)
    node["inputs"] = []
    if depth >= _MAX_DEPTH:
        return node
    for p in s.scalars(select(CommitProvenanceRow).where(CommitProvenanceRow.commit_id == row.id)):
        src = s.get(CommitRow, p.source_commit_id)
        if src is None:
            node["inputs"].append({"repo": p.source_repo, "branch": p.source_branch, "commit": p.source_commit_id,
                                   "state": "deleted", "inputs": []})
        else:
            node["inputs"].append(_upstream(s, src, depth + 1))
    return node


def _downstream(s: Session, row: CommitRow, depth: int) -> dict[str, Any]:
    node = _node(s, row)
    node["outputs"] = []
    if depth >= _MAX_DEPTH:
        return node
    for child_id in s.scalars(select(CommitProvenanceRow.commit_id)
                              .where(CommitProvenanceRow.source_commit_id == row.id)):
        child = s.get(CommitRow, child_id)
        if child is not None:
            node["outputs"].append(_downstream(s, child, depth + 1))
    return node


def lineage(ctx: Context, commits: CommitService, repo: str, ref: str, ancestry: int = 0) -> dict[str, Any]:
    """{"commit": ..., "upstream": tree of inputs, "downstream": tree of results}."""
    with ctx.db.read() as s:
        row = commits.resolve_row(s, ctx.repo_row(s, repo), ref, ancestry)
        return {"commit": _node(s, row), "upstream": _upstream(s, row, 0), "downstream": _downstream(s, row, 0)}
