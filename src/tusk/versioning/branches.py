from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from tusk.errors import AlreadyExists, Conflict
from tusk.ids import validate_branch_name
from tusk.storage.metadata import BranchRow, CommitRow
from tusk.units import human_size
from tusk.versioning import refstore
from tusk.versioning.commits import CommitService
from tusk.versioning.context import Context, _aware, now
from tusk.versioning.records import BranchInfo
from tusk.versioning.refs import parse_ref

__all__ = ["BranchService"]


class BranchService:
    def __init__(self, ctx: Context, commits: CommitService) -> None:
        self.ctx = ctx
        self.commits = commits

    def create(self, repo: str, name: str, head: str | None = None, reason: str = "branch",
               note: str | None = None) -> BranchInfo:
        """Create a branch, optionally at ``head`` (a ref in the same repo).

        An existing branch is an error unless ``head`` is given, in which case
        the branch moves there (recorded as a branch move of kind ``reason``,
        with the caller's ``note``, already checked, on why).
        """
        validate_branch_name(name)
        with self.ctx.db.write() as s:
            repo_row = self.ctx.repo_row(s, repo)
            target: str | None = None
            if head is not None:
                h_repo, h_ref, h_anc = parse_ref(head if "@" in head else f"{repo}@{head}")
                if h_repo != repo:
                    raise Conflict(f"--head {head} is in repo {h_repo!r}, not {repo!r}")
                row = self.commits.resolve_row(s, repo_row, h_ref, h_anc)
                if row.state != "finished":
                    raise Conflict(f"cannot point a branch at commit {row.id}: it is {row.state}")
                target = row.id
            existing = s.scalar(select(BranchRow).where(BranchRow.repo_id == repo_row.id, BranchRow.name == name))
            if existing is not None:
                if head is None:
                    raise AlreadyExists(f"branch {repo}@{name} already exists; pass --head to move it")
                previous = existing.head_id
                existing.head_id = target
                branch = existing
            else:
                previous = None
                branch = BranchRow(repo_id=repo_row.id, name=name, head_id=target, created_at=now())
                s.add(branch)
            # a move with a note is kept even to the head the branch has (a promotion confirmed, with its why);
            # it moves nothing, so it triggers nothing
            if target is not None and (previous != target or note is not None):
                refstore.record_move(s, repo_row.id, name, previous, target, self.ctx.user, reason, now(), note)
            s.flush()
            info = BranchInfo(repo, branch.name, branch.head_id, _aware(branch.created_at), describe_trigger(branch))
            moved = target is not None and previous != target
        if moved:  # moving a head by hand triggers the pipelines that read the branch, as a commit does
            moved_to = self.commits.inspect(repo, name)
            self.commits.notify(replace(moved_to, branch=name), moved=True)
        return info

    def list(self, repo: str) -> list[BranchInfo]:
        with self.ctx.db.read() as s:
            repo_row = self.ctx.repo_row(s, repo)
            rows = s.scalars(select(BranchRow).where(BranchRow.repo_id == repo_row.id).order_by(BranchRow.name))
            return [BranchInfo(repo, b.name, b.head_id, _aware(b.created_at), describe_trigger(b)) for b in rows]

    def delete(self, repo: str, name: str) -> None:
        with self.ctx.db.write() as s:
            repo_row = self.ctx.repo_row(s, repo)
            branch = self.ctx.branch_row(s, repo_row, name)
            if s.scalar(select(CommitRow.id).where(CommitRow.repo_id == repo_row.id, CommitRow.branch == name,
                                                   CommitRow.state == "open").limit(1)):
                raise Conflict(f"branch {repo}@{name} has an open commit; finish or delete it first")
            s.delete(branch)


def describe_trigger(b: refstore.TriggerFields) -> str | None:
    """A branch's trigger in words: the branch it follows, then its conditions."""
    if b.trigger_branch is None:
        return None
    parts = []
    if b.trigger_commits is not None:
        parts.append(f"{b.trigger_commits} commit{'s' if b.trigger_commits != 1 else ''}")
    if b.trigger_size is not None:
        parts.append(human_size(b.trigger_size))
    if b.trigger_cron is not None:
        parts.append(f"cron {b.trigger_cron}")
    return f"{b.trigger_branch}: " + (" and " if b.trigger_all else " or ").join(parts)

