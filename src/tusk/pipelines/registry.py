"""Pipelines as versioned specs: create, update, inspect, list, stop, start, delete."""

from __future__ import annotations

import contextlib
import json
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tusk.errors import AlreadyExists, Conflict, NotFound
from tusk.pipelines.code import describe_code
from tusk.pipelines.records import PipelineInfo
from tusk.pipelines.spec import CronInput, PfsInput, PipelineSpec, parse_spec
from tusk.storage.metadata import JobRow, PipelineRow, PipelineVersionRow, RepoRow
from tusk.versioning.context import Context, _aware, now
from tusk.versioning.repos import RepoService

__all__ = ["PipelineNotFound", "PipelineService", "StoredPipeline"]


class PipelineNotFound(NotFound):
    pass


class StoredPipeline:
    """A pipeline's current row and spec, as the job engine needs them."""

    def __init__(self, row: PipelineRow, version: PipelineVersionRow) -> None:
        self.row = row
        self.version = version
        self.spec = parse_spec(json.loads(version.spec_json))

    @property
    def name(self) -> str:
        return self.row.name


def _code_change(current: StoredPipeline, spec: PipelineSpec, code: dict[str, Any]) -> str | None:
    """Why the datums of ``spec`` would compute something else than those of the current version, if they would."""
    if current.spec.transform != spec.transform:
        return "the transform changed"
    before = json.loads(current.version.code_info) if current.version.code_info else {}
    if before.get("digest") and code.get("digest") and before["digest"] != code["digest"]:
        return f"the code in {code.get('dir')} changed"
    return None


class PipelineService:
    def __init__(self, ctx: Context, repos: RepoService) -> None:
        self.ctx = ctx
        self.repos = repos

    def _row(self, s: Session, name: str) -> PipelineRow:
        row = s.scalar(select(PipelineRow).where(PipelineRow.name == name))
        if row is None:
            raise PipelineNotFound(f"pipeline {name!r} not found; create it with `tusk pipeline create -f SPEC`")
        return row

    def load(self, s: Session, name: str, version: int | None = None) -> StoredPipeline:
        row = self._row(s, name)
        v = s.get(PipelineVersionRow, (row.id, version or row.version))
        if v is None:
            raise PipelineNotFound(f"pipeline {name!r} has no version {version}")
        return StoredPipeline(row, v)

    def all(self, s: Session) -> list[StoredPipeline]:
        rows = s.scalars(select(PipelineRow).order_by(PipelineRow.id)).all()
        return [self.load(s, r.name) for r in rows]

    def create(self, spec: PipelineSpec, code_dir: Path, code: dict[str, Any] | None = None) -> PipelineInfo:
        """Register a pipeline and create its output repo (named after it).

        ``code`` describes the code when it was described elsewhere (a remote
        client uploading its spec directory); by default ``code_dir`` is.
        """
        cron_repos = [leaf.tick_repo(spec.name) for leaf in spec.input.leaves() if isinstance(leaf, CronInput)]
        for leaf in spec.input.leaves():
            if isinstance(leaf, PfsInput):
                self.repos.inspect(leaf.repo)  # inputs must exist: a clear error now beats a stuck pipeline
                if leaf.repo == spec.name:
                    raise Conflict(f"pipeline {spec.name} cannot read its own output repo")
        for repo in cron_repos:  # cron ticks are commits to a repo of their own
            with contextlib.suppress(AlreadyExists):
                self.repos.create(repo, f"cron ticks for pipeline {spec.name}")
        with self.ctx.db.write() as s:
            if s.scalar(select(PipelineRow.id).where(PipelineRow.name == spec.name)) is not None:
                raise AlreadyExists(f"pipeline {spec.name!r} already exists; use `tusk pipeline update`")
            if s.scalar(select(RepoRow.id).where(RepoRow.name == spec.name)) is not None:
                raise AlreadyExists(f"repo {spec.name!r} already exists; a pipeline's output repo takes its name")
            s.add(RepoRow(name=spec.name, description=f"output of pipeline {spec.name}", created_at=now()))
            row = PipelineRow(name=spec.name, version=1, state="running", created_by=self.ctx.user,
                              created_at=now())
            s.add(row)
            s.flush()
            s.add(self._version(row, 1, spec, secrets.token_hex(16), code_dir, code))
            s.flush()
            return self._info(s, row)

    def update(self, spec: PipelineSpec, code_dir: Path, reprocess: bool = False,
               code: dict[str, Any] | None = None) -> PipelineInfo:
        """A new spec version. Every datum runs again (a new salt) with ``reprocess``, or when what the datums
        run changed: the transform, or the code in the code directory.

        Pachyderm reuses old outputs after a transform change unless asked to
        reprocess; reusing outputs of code that no longer exists is how wrong
        models ship, so Tusk does not, and says so in the returned notes.
        """
        code = code or describe_code(code_dir)
        with self.ctx.db.write() as s:
            current = self.load(s, spec.name)
            why = "--reprocess" if reprocess else _code_change(current, spec, code)
            salt = secrets.token_hex(16) if why else current.version.salt
            current.row.version += 1
            s.add(self._version(current.row, current.row.version, spec, salt, code_dir, code))
            s.flush()
            info = self._info(s, current.row)
        if why and why != "--reprocess":
            info = replace(info, notes=[*info.notes, f"{why}: every datum runs again"])
        return info

    def rerun(self, name: str, reprocess: bool = False) -> PipelineInfo:
        with self.ctx.db.read() as s:
            current = self.load(s, name)
        return self.update(current.spec, Path(current.version.code_dir), reprocess)

    def _version(self, row: PipelineRow, version: int, spec: PipelineSpec, salt: str, code_dir: Path,
                 code: dict[str, Any] | None = None) -> PipelineVersionRow:
        return PipelineVersionRow(pipeline_id=row.id, version=version, spec_json=spec.canonical_json(), salt=salt,
                                  code_dir=str(code_dir), code_info=json.dumps(code or describe_code(code_dir)),
                                  created_by=self.ctx.user, created_at=now())

    def set_state(self, name: str, state: str) -> PipelineInfo:
        with self.ctx.db.write() as s:
            row = self._row(s, name)
            row.state = state
            return self._info(s, row)

    def inspect(self, name: str) -> PipelineInfo:
        with self.ctx.db.read() as s:
            return self._info(s, self._row(s, name))

    def versions(self, name: str) -> list[dict[str, object]]:
        with self.ctx.db.read() as s:
            row = self._row(s, name)
            rows = s.scalars(select(PipelineVersionRow).where(PipelineVersionRow.pipeline_id == row.id)
                             .order_by(PipelineVersionRow.version))
            return [{"version": v.version, "created_by": v.created_by, "created_at": _aware(v.created_at).isoformat(),
                     "spec": json.loads(v.spec_json), "code": json.loads(v.code_info) if v.code_info else None}
                    for v in rows]

    def list(self) -> list[PipelineInfo]:
        with self.ctx.db.read() as s:
            return [self._info(s, r) for r in s.scalars(select(PipelineRow).order_by(PipelineRow.name))]

    def delete(self, name: str, keep_repo: bool = False) -> None:
        with self.ctx.db.write() as s:
            row = self._row(s, name)
            for other in self.all(s):
                if other.name != name and any(leaf.repo == name for leaf in other.spec.pfs_leaves()):
                    raise Conflict(f"pipeline {other.name} reads {name}'s output; delete {other.name} first")
            s.delete(row)
        if not keep_repo:
            self.repos.delete(name, force=True)

    def _info(self, s: Session, row: PipelineRow) -> PipelineInfo:
        stored = StoredPipeline(row, s.get(PipelineVersionRow, (row.id, row.version)))  # type: ignore[arg-type]
        last = s.scalar(select(JobRow).where(JobRow.pipeline_id == row.id).order_by(JobRow.created_at.desc())
                        .limit(1))
        repos = sorted({leaf.repo for leaf in stored.spec.pfs_leaves()})
        return PipelineInfo(
            name=row.name, version=row.version, state=row.state, description=stored.spec.description,
            input_repos=repos, created_by=row.created_by, created_at=_aware(row.created_at),
            spec=json.loads(stored.version.spec_json), last_job=last.id if last else None,
            last_job_state=last.state if last else None,
        )
