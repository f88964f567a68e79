"""Cron inputs: ticks are commits of a timestamp file to the input's tick repo.

``tick`` commits one now (``tusk pipeline run-cron``); ``tick_due`` commits one
for every cron input whose schedule has come round since its last tick (the
server's scheduler calls it; embedded users can call it from their own cron).
"""

from __future__ import annotations

from datetime import UTC, datetime

from tusk.errors import NotFound
from tusk.pipelines.registry import PipelineService
from tusk.pipelines.spec import CronInput
from tusk.schedules import next_fire
from tusk.versioning import refstore
from tusk.versioning.commits import CommitService
from tusk.versioning.context import Context
from tusk.versioning.files import FileService
from tusk.versioning.records import CommitInfo
from tusk.versioning.staging import Op

__all__ = ["CronService"]


class CronService:
    def __init__(self, ctx: Context, commits: CommitService, files: FileService, pipelines: PipelineService) -> None:
        self.ctx, self.commits, self.files, self.pipelines = ctx, commits, files, pipelines

    def _crons(self, pipeline: str) -> list[CronInput]:
        with self.ctx.db.read() as s:
            spec = self.pipelines.load(s, pipeline).spec
        return [leaf for leaf in spec.input.leaves() if isinstance(leaf, CronInput)]

    def tick(self, pipeline: str, name: str | None = None, at: datetime | None = None) -> list[CommitInfo]:
        crons = [c for c in self._crons(pipeline) if name is None or c.name == name]
        if not crons:
            raise NotFound(f"pipeline {pipeline} has no cron input" + (f" named {name}" if name else ""))
        at = at or datetime.now(UTC)
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out = []
        for cron in crons:
            mod = self.files.modify(cron.tick_repo(pipeline), "master", f"cron tick {stamp}")
            if cron.overwrite:  # keep only the newest tick
                mod.ops.append(Op("delete", "/", missing_ok=True))
            mod.put_bytes(f"/{stamp}", stamp.encode())
            commit = mod.land()
            assert commit is not None
            out.append(commit)
        return out

    def last_tick(self, repo: str) -> datetime | None:
        with self.ctx.db.read() as s:
            repo_row = self.ctx.repo_row(s, repo)
            row = refstore.head(s, repo_row.id, "master")
            return row.finished_at if row is not None else None

    def tick_due(self, now: datetime | None = None) -> list[CommitInfo]:
        now = now or datetime.now(UTC)
        out = []
        for info in self.pipelines.list():
            if info.state != "running":
                continue
            for cron in self._crons(info.name):
                start = datetime.fromisoformat(cron.start) if cron.start else info.created_at
                last = self.last_tick(cron.tick_repo(info.name)) or start
                if next_fire(cron.spec, last) <= now:
                    out.extend(self.tick(info.name, cron.name, now))
        return out
