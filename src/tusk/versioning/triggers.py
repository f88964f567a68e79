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
from tusk.storage.metadata import BranchRow
from tusk.versioning import refstore
from tusk.versioning.branches import BranchService
from tusk.versioning.context import Context, now
from tusk.versioning.records import BranchInfo, CommitInfo

__all__ = ["BranchTrigger", "TriggerService", "parse_size", "set_branch_trigger", "set_trigger",
           "trigger_of"]

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


def set_branch_trigger(s: Session, repo_id: int, name: str, trigger: BranchTrigger | None) -> None:
    """Give a branch its trigger (or none), creating the branch if missing, in the caller's transaction: a
    pipeline's input trigger is set in the transaction that creates the pipeline
    (``tusk.pipelines.input_triggers``)."""
    row = s.scalar(select(BranchRow).where(BranchRow.repo_id == repo_id, BranchRow.name == name))
    if row is None:
        row = BranchRow(repo_id=repo_id, name=name, head_id=None, created_at=now())
        s.add(row)
    set_trigger(row, trigger)
    s.flush()


def set_trigger(row: BranchRow, trigger: BranchTrigger | None) -> None:
    """Give a branch row its trigger (or none)."""
    row.trigger_branch = trigger.branch if trigger else None
    row.trigger_commits = trigger.commits if trigger else None
    row.trigger_size = trigger.size if trigger else None
    row.trigger_cron = trigger.cron if trigger else None
    row.trigger_all = trigger.all if trigger else False


def trigger_of(row: refstore.TriggerFields) -> BranchTrigger | None:
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

    def follow(self, repo: str, branch: str, trigger: BranchTrigger, head: str | None = None) -> BranchInfo:
        """Make ``branch`` follow ``trigger.branch`` on its conditions (``pachctl create branch --trigger-branch``),
        creating either branch if missing (or moving ``branch`` to ``head``). The branch new data goes to starts
        where the follower is, as Pachyderm does."""
        if trigger.branch == branch:
            raise InvalidArgument(f"branch {repo}@{branch} cannot follow itself: name another --trigger-branch")
        existing = {b.name: b for b in self.branches.list(repo)}
        if branch not in existing or head is not None:
            self.branches.create(repo, branch, head)
        if trigger.branch not in existing:
            start = head if head is not None else (existing[branch].head if branch in existing else None)
            self.branches.create(repo, trigger.branch, start)
        self.set(repo, branch, trigger)
        return next(b for b in self.branches.list(repo) if b.name == branch)

    def on_commit(self, commit: CommitInfo, moved: bool = False) -> None:
        """After a commit lands on a branch, move the branches that follow it if their trigger fires."""
        fire: list[tuple[str, str]] = []
        with self.ctx.db.read() as s:
            repo = self.ctx.repo_row(s, commit.repo)
            for b in refstore.followers(s, repo.id, commit.branch):
                if b.head_id != commit.id and self._fires(s, b, commit):
                    fire.append((b.name, commit.id))
        for name, target in fire:
            self.branches.create(commit.repo, name, head=target, reason="trigger")

    def _fires(self, s: Session, b: refstore.BranchRef, commit: CommitInfo) -> bool:
        results = []
        if b.trigger_commits is not None:
            results.append(self._commits_since(s, commit.id, b.head_id) >= b.trigger_commits)
        if b.trigger_size is not None:
            head = refstore.commit(s, b.head_id) if b.head_id else None
            base = head.size_bytes if head is not None else 0
            results.append(abs(commit.size_bytes - base) >= b.trigger_size)
        if b.trigger_cron is not None:
            since = refstore.last_move_at(s, b.repo_id, b.name) or b.created_at
            results.append(next_fire(b.trigger_cron, since) <= datetime.now(UTC))
        return all(results) if b.trigger_all else any(results)

    @staticmethod
    def _commits_since(s: Session, head: str, stop: str | None) -> int:
        n = 0
        for cid in refstore.ancestry(s, head, 1_000_000):
            if cid == stop:
                break
            n += 1
        return n
