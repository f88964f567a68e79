"""Lineage: where a commit came from (upstream) and what was computed from it (downstream)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tusk.errors import FileNotFound
from tusk.pipelines import datum_rows
from tusk.storage.metadata import (
    DatumRunRow,
    JobRow,
    PipelineRow,
    PipelineVersionRow,
    RepoRow,
)
from tusk.versioning import refstore
from tusk.versioning.context import Context
from tusk.versioning.refstore import CommitRef

__all__ = ["lineage"]

_MAX_DEPTH = 64


def _node(s: Session, row: CommitRef) -> dict[str, Any]:
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
            version = s.get(PipelineVersionRow, (job.pipeline_id, job.pipeline_version))
            if version is not None:
                node["code"] = _code(version)
    return node


def _code(version: PipelineVersionRow) -> dict[str, Any]:
    """The code the job ran: its stored tree, the source directory's digest, the git commit, and the image (its
    reference and id, the config's digest) when the version runs one."""
    info = json.loads(version.code_info) if version.code_info else {}
    code = {"tree": version.code_tree, "digest": info.get("digest"), "git_commit": (info.get("git") or {}).get(
        "commit")}
    if info.get("image"):
        code["image"] = {k: v for k, v in info["image"].items() if k in ("ref", "id", "fallback", "runtime")}
    return code


def _upstream(s: Session, row: CommitRef, depth: int) -> dict[str, Any]:
    node = _node(s, row)
    node["inputs"] = []
    if depth >= _MAX_DEPTH:
        return node
    for p in refstore.sources(s, row.id):
        src = refstore.commit(s, p["commit"])
        if src is None:
            node["inputs"].append({**p, "state": "deleted", "inputs": []})
        else:
            node["inputs"].append(_upstream(s, src, depth + 1))
    return node


def _downstream(s: Session, row: CommitRef, depth: int) -> dict[str, Any]:
    node = _node(s, row)
    node["outputs"] = []
    if depth >= _MAX_DEPTH:
        return node
    for child_id in refstore.children(s, row.id):
        child = refstore.commit(s, child_id)
        if child is not None:
            node["outputs"].append(_downstream(s, child, depth + 1))
    return node


def _datum_of(ctx: Context, s: Session, row: CommitRef, path: str) -> dict[str, Any] | None:
    """The datum of the commit's job whose output holds ``path`` as it is in the commit, with its input files."""
    entry = ctx.trees.lookup(row.tree_digest or "", path)
    if entry is None:
        raise FileNotFound(f"{path} is not in commit {row.id}")
    if row.job_id is None:
        return None
    job = s.get(JobRow, row.job_id)
    if job is None:
        return None
    runs = s.scalars(select(DatumRunRow).where(datum_rows.listed_where(job), DatumRunRow.output_tree.is_not(None)))
    for run in runs:
        produced = ctx.trees.lookup(run.output_tree or "", path)
        if produced is not None and produced.digest == entry.digest:
            datum = datum_rows.info(job, [run])[0]
            return {"id": datum.id, "job": datum.job, "state": datum.state, "path": path, "inputs": datum.inputs}
    return None


def lineage(ctx: Context, repo: str, ref: str, ancestry: int = 0, path: str | None = None) -> dict[str, Any]:
    """{"commit": ..., "upstream": tree of inputs, "downstream": tree of results}.

    With ``path`` (a file of an output commit), also "datum": the datum that
    wrote it and the exact input files (repo, commit, path) it read.
    """
    with ctx.db.read() as s:
        row = refstore.resolve(s, ctx.repo_row(s, repo), ref, ancestry)
        result: dict[str, Any] = {"commit": _node(s, row), "upstream": _upstream(s, row, 0),
                                  "downstream": _downstream(s, row, 0)}
        if path is not None:
            result["datum"] = _datum_of(ctx, s, row, path)
        return result
