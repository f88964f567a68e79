"""What every versioning service shares, and the lookups they all need."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from tusk.errors import AmbiguousId, BranchNotFound, CommitNotFound, RepoNotFound
from tusk.ids import is_id_prefix
from tusk.storage.content import ContentStore
from tusk.storage.metadata import BranchRow, CommitProvenanceRow, CommitRow, Database, RepoRow
from tusk.storage.objects import ObjectStore
from tusk.versioning.records import CommitInfo, InputCommit, commit_state
from tusk.versioning.trees import TreeStore

__all__ = ["Context", "acting_as", "expand_id", "now"]

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


_CANDIDATES = 50  # an ambiguous prefix carries this many of the ids it matches (for the API to filter)


def expand_id(s: Session, column: InstrumentedAttribute[str], text: str, what: str,
              *where: ColumnElement[bool], scope: str = "") -> str | None:
    """The one id in ``column`` that starts with ``text`` (6 to 32 hex characters), or None.

    Every kind of id (commit, commit set, job, datum) is looked up by prefix here
    and only here. Ids are lowercase hex, so the ids that start with ``abc123``
    are exactly those in ``['abc123', 'abc123fff…']``: a range an index on the
    id column answers (on any collation, unlike ``LIKE``), not a scan.
    More than one match is ``AmbiguousId``, naming them.
    """
    if not is_id_prefix(text):
        return None
    found = list(s.scalars(select(column).distinct()
                           .where(column >= text, column <= text.ljust(32, "f"), *where)
                           .order_by(column).limit(_CANDIDATES)))
    if len(found) > 1:
        raise AmbiguousId.among(what, text, found, scope)
    return found[0] if found else None


@dataclass
class Context:
    db: Database
    objects: ObjectStore
    content: ContentStore
    trees: TreeStore
    default_user: str  # who acts when no request or job says otherwise (TUSK_USER)
    gc_generation_seen: int = -1  # the gc generation this process's caches are valid for (versioning.fence)

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
        return _commit_info(row, repo_name, prov)

    def commit_infos(self, s: Session, rows: Sequence[CommitRow], repo_name: str) -> list[CommitInfo]:
        """``commit_info`` of each row of one repo, with their provenance read in one query (a page of a
        history is two queries, not one per commit)."""
        prov: dict[str, list[CommitProvenanceRow]] = {}
        ids = [r.id for r in rows]
        for at in range(0, len(ids), _IN_BATCH):
            for p in s.scalars(select(CommitProvenanceRow).where(
                    CommitProvenanceRow.commit_id.in_(ids[at:at + _IN_BATCH]))):
                prov.setdefault(p.commit_id, []).append(p)
        return [_commit_info(r, repo_name, prov.get(r.id, [])) for r in rows]


_IN_BATCH = 500  # ids per ``IN (...)``: well under SQLite's and PostgreSQL's bound-parameter limits


def _commit_info(row: CommitRow, repo_name: str, prov: Sequence[CommitProvenanceRow]) -> CommitInfo:
    return CommitInfo(
        id=row.id,
        repo=repo_name,
        branch=row.branch,
        parent=row.parent_id,
        origin=row.origin,
        description=row.description,
        state=commit_state(row.state),
        size_bytes=row.size_bytes,
        global_id=row.commit_set_id,
        author=row.author,
        started_at=_aware(row.started_at),
        finished_at=_aware(row.finished_at) if row.finished_at else None,
        tree=row.tree_digest,
        error=row.error,
        provenance=[
            InputCommit(repo=p.source_repo, branch=p.source_branch, commit=p.source_commit_id) for p in prov
        ],
    )


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything Tusk stores is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
