"""Branch triggers: deferred processing.

A branch with a trigger follows another branch, but only moves when the
conditions hold: enough commits (``commits``), enough new data (``size``), or
enough time since it last moved (``cron``); all of them with ``all``, any one
otherwise. Data is pushed to e.g. ``staging`` and pipelines that read
``master`` run only when the trigger fires (Pachyderm's deferred processing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tusk.errors import InvalidArgument
from tusk.schedules import cron_interval, next_fire
from tusk.storage.metadata import BranchMoveRow, BranchRow, CommitRow
from tusk.versioning.branches import BranchService
from tusk.versioning.context import Context, _aware
from tusk.versioning.records import CommitInfo

__all__ = ["BranchTrigger", "TriggerService", "parse_size", "set_trigger", "trigger_of"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "mi": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3,
          "t": 1000**4, "tb": 1000**4, "tib": 1024**4, "ti": 1024**4}


def parse_size(text: str) -> int:
    m = _SIZE.match(text)
    if not m or m.group(2).lower() not in _UNITS:
        raise InvalidArgument(f"invalid size {text!r}: use e.g. 500MB, 1GiB or 1000")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


@dataclass(frozen=True)
class BranchTrigger:
    branch: str
    commits: int | None = None
    size: int | None = None
    cron: str | None = None
    all: bool = False

    def __post_init__(self) -> None:
        if self.commits is None and self.size is None and self.cron is None:
            raise InvalidArgument("a trigger needs at least one of --trigger-commits, --trigger-size, --trigger-cron")
        if self.cron is not None:
            try:
                cron_interval(self.cron)
            except ValueError as exc:
                raise InvalidArgument(f"invalid --trigger-cron {self.cron!r}: {exc}") from None


def set_trigger(row: BranchRow, trigger: BranchTrigger | None) -> None:
    """Give a branch row its trigger (or none), in the caller's transaction: a pipeline's input trigger is set
    in the transaction that creates the pipeline (``tusk.pipelines.input_triggers``)."""
    row.trigger_branch = trigger.branch if trigger else None
    row.trigger_commits = trigger.commits if trigger else None
    row.trigger_size = trigger.size if trigger else None
    row.trigger_cron = trigger.cron if trigger else None
    row.trigger_all = trigger.all if trigger else False


def trigger_of(row: BranchRow) -> BranchTrigger | None:
    """The trigger a branch row holds, if any."""
    if row.trigger_branch is None:
        return None
    return BranchTrigger(row.trigger_branch, row.trigger_commits, row.trigger_size, row.trigger_cron,
                         row.trigger_all)


class TriggerService:
    def __init__(self, ctx: Context, branches: BranchService) -> None:
        self.ctx = ctx
        self.branches = branches

    def set(self, repo: str, branch: str, trigger: BranchTrigger | None) -> None:
        with self.ctx.db.write() as s:
            set_trigger(self.ctx.branch_row(s, self.ctx.repo_row(s, repo), branch), trigger)

    def on_commit(self, commit: CommitInfo, moved: bool = False) -> None:
        """After a commit lands on a branch, move the branches that follow it if their trigger fires."""
        fire: list[tuple[str, str]] = []
        with self.ctx.db.read() as s:
            repo = self.ctx.repo_row(s, commit.repo)
            for b in s.scalars(select(BranchRow).where(BranchRow.repo_id == repo.id,
                                                       BranchRow.trigger_branch == commit.branch)):
                if b.head_id != commit.id and self._fires(s, b, commit):
                    fire.append((b.name, commit.id))
        for name, target in fire:
            self.branches.create(commit.repo, name, head=target, reason="trigger")

    def _fires(self, s: Session, b: BranchRow, commit: CommitInfo) -> bool:
        results = []
        if b.trigger_commits is not None:
            results.append(self._commits_since(s, commit.id, b.head_id) >= b.trigger_commits)
        if b.trigger_size is not None:
            base = s.get(CommitRow, b.head_id).size_bytes if b.head_id else 0  # type: ignore[union-attr]
            results.append(abs(commit.size_bytes - base) >= b.trigger_size)
        if b.trigger_cron is not None:
            last = s.scalar(select(BranchMoveRow.moved_at).where(BranchMoveRow.repo_id == b.repo_id,
                                                                 BranchMoveRow.branch == b.name)
                            .order_by(BranchMoveRow.moved_at.desc()).limit(1))
            since = _aware(last) if last else _aware(b.created_at)
            results.append(next_fire(b.trigger_cron, since) <= datetime.now(UTC))
        return all(results) if b.trigger_all else any(results)

    @staticmethod
    def _commits_since(s: Session, head: str, stop: str | None) -> int:
        n, cur = 0, head  # type: int, str | None
        while cur is not None and cur != stop and n < 1_000_000:
            n += 1
            row = s.get(CommitRow, cur)
            cur = row.parent_id if row else None
        return n
