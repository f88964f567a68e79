"""What every versioning service shares, and the lookups they all need."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tusk.errors import BranchNotFound, CommitNotFound, RepoNotFound
from tusk.storage.content import ContentStore
from tusk.storage.metadata import BranchRow, CommitProvenanceRow, CommitRow, Database, RepoRow
from tusk.storage.objects import ObjectStore
from tusk.versioning.records import CommitInfo
from tusk.versioning.trees import TreeStore

__all__ = ["Context", "acting_as", "now"]

_ACTING: ContextVar[str | None] = ContextVar("tusk_acting_user", default=None)


@contextmanager
def acting_as(user: str) -> Iterator[None]:
    """Record ``user`` as the actor of what runs inside (an API request's caller, a pipeline's creator)."""
    token = _ACTING.set(user)
    try:
        yield
    finally:
        _ACTING.reset(token)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    db: Database
    objects: ObjectStore
    content: ContentStore
    trees: TreeStore
    default_user: str  # who acts when no request or job says otherwise (TUSK_USER)

    @property
    def user(self) -> str:
        return _ACTING.get() or self.default_user

    def repo_row(self, s: Session, name: str) -> RepoRow:
        row = s.scalar(select(RepoRow).where(RepoRow.name == name))
        if row is None:
            raise RepoNotFound(f"repo {name!r} not found; create it with `tusk repo create {name}`")
        return row

    def branch_row(self, s: Session, repo: RepoRow, name: str, *, for_update: bool = False) -> BranchRow:
        q = select(BranchRow).where(BranchRow.repo_id == repo.id, BranchRow.name == name)
        if for_update and not self.db.is_sqlite:
            q = q.with_for_update()
        row = s.scalar(q)
        if row is None:
            raise BranchNotFound(f"branch {name!r} not found in repo {repo.name!r}")
        return row

    def commit_row(self, s: Session, commit_id: str, repo: RepoRow | None = None) -> CommitRow:
        row = s.get(CommitRow, commit_id)
        if row is None or (repo is not None and row.repo_id != repo.id):
            where = f" in repo {repo.name!r}" if repo is not None else ""
            raise CommitNotFound(f"commit {commit_id} not found{where}")
        return row

    def commit_info(self, s: Session, row: CommitRow, repo_name: str | None = None) -> CommitInfo:
        if repo_name is None:
            repo_name = s.get(RepoRow, row.repo_id).name  # type: ignore[union-attr]
        prov = s.scalars(select(CommitProvenanceRow).where(CommitProvenanceRow.commit_id == row.id)).all()
        return CommitInfo(
            id=row.id,
            repo=repo_name,
            branch=row.branch,
            parent=row.parent_id,
            origin=row.origin,
            description=row.description,
            state=row.state,
            size_bytes=row.size_bytes,
            global_id=row.commit_set_id,
            author=row.author,
            started_at=_aware(row.started_at),
            finished_at=_aware(row.finished_at) if row.finished_at else None,
            tree=row.tree_digest,
            error=row.error,
            provenance=[
                {"repo": p.source_repo, "branch": p.source_branch, "commit": p.source_commit_id} for p in prov
            ],
        )


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything Tusk stores is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
