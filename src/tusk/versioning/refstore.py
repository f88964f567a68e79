"""The ref store: heads, branches, commits, commit sets and provenance, read and moved in one place.

Every service outside ``tusk.versioning`` (jobs, cron, lineage, models,
deployments, input triggers, the SDK) asks this module about refs and gets
values back (``CommitRef``, ``BranchRef``, ``InputCommit``, ``Move``), never ORM
rows; a test (``tests/unit/test_layers.py``) keeps the ref tables' rows out of
every module outside versioning. Each function runs in the caller's session,
so a lookup can sit inside the transaction that acts on it (a job is created
against the heads it read).

Inside versioning, the commit and branch services use the row-level helpers
(``resolve_row``, ``head_id``, ``compare_and_set_head``, ``record_move``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tusk.errors import BranchNotFound, CommitNotFound
from tusk.ids import ID_PREFIX_MIN, is_commit_id, is_id_prefix
from tusk.storage.metadata import BranchMoveRow, BranchRow, CommitProvenanceRow, CommitRow, RepoRow
from tusk.versioning.context import _IN_BATCH, _aware, expand_id
from tusk.versioning.records import CommitState, InputCommit, commit_state

__all__ = [
    "BranchRef",
    "CommitRef",
    "Move",
    "TriggerFields",
    "ancestry",
    "branch",
    "branch_exists",
    "branches_at",
    "children",
    "commit",
    "commit_id",
    "compare_and_set_head",
    "finished_in_set",
    "followers",
    "head",
    "head_id",
    "last_move_at",
    "moves",
    "open_in_set",
    "record_move",
    "resolve",
    "resolve_row",
    "sources",
    "trigger_follows",
]


@dataclass(frozen=True, slots=True)
class CommitRef:
    """A commit as the services outside versioning see it: a value, with the row's field names."""

    id: str
    repo_id: int
    branch: str
    parent_id: str | None
    origin: str
    state: CommitState
    tree_digest: str | None
    size_bytes: int
    commit_set_id: str
    job_id: str | None
    author: str
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: CommitRow) -> CommitRef:
        return cls(row.id, row.repo_id, row.branch, row.parent_id, row.origin, commit_state(row.state), row.tree_digest,
                   row.size_bytes, row.commit_set_id, row.job_id, row.author, _aware(row.started_at),
                   _aware(row.finished_at) if row.finished_at else None)


class TriggerFields(Protocol):
    """A branch's trigger columns, on its row or on a ``refstore.BranchRef``."""

    @property
    def trigger_branch(self) -> str | None: ...
    @property
    def trigger_commits(self) -> int | None: ...
    @property
    def trigger_size(self) -> int | None: ...
    @property
    def trigger_cron(self) -> str | None: ...
    @property
    def trigger_all(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class BranchRef:
    """A branch: its head and its trigger's fields (``tusk.versioning.triggers`` reads them)."""

    repo_id: int
    name: str
    head_id: str | None
    created_at: datetime
    trigger_branch: str | None
    trigger_commits: int | None
    trigger_size: int | None
    trigger_cron: str | None
    trigger_all: bool

    @classmethod
    def of(cls, row: BranchRow) -> BranchRef:
        return cls(row.repo_id, row.name, row.head_id, _aware(row.created_at), row.trigger_branch,
                   row.trigger_commits, row.trigger_size, row.trigger_cron, bool(row.trigger_all))


@dataclass(frozen=True, slots=True)
class Move:
    """One move of a branch head."""

    from_commit: str | None
    to_commit: str | None
    actor: str
    reason: str
    moved_at: datetime
    note: str | None


# -- commits ---------------------------------------------------------------
def commit(s: Session, cid: str) -> CommitRef | None:
    row = s.get(CommitRow, cid) if cid else None
    return CommitRef.of(row) if row is not None else None


def commit_id(s: Session, repo: RepoRow, text: str) -> str | None:
    """The commit of ``repo`` whose id is ``text`` or starts with it (6+ hex characters), if any.

    Not a branch lookup: callers try a branch of that name first.
    """
    if is_commit_id(text):
        return text
    return expand_id(s, CommitRow.id, text, "commit", CommitRow.repo_id == repo.id, scope=f" in repo {repo.name!r}")


def _commit_row(s: Session, cid: str, repo: RepoRow) -> CommitRow:
    row = s.get(CommitRow, cid)
    if row is None or row.repo_id != repo.id:
        raise CommitNotFound(f"commit {cid} not found in repo {repo.name!r}")
    return row


def resolve_row(s: Session, repo: RepoRow, ref: str, ancestry: int = 0) -> CommitRow:
    """The commit a ref names: a branch of that name if there is one, else the commit with that id, else the
    one commit whose id starts with it (6+ hex characters; several are ``AmbiguousId``); then ``ancestry``
    parents back."""
    branch_row = s.scalar(select(BranchRow).where(BranchRow.repo_id == repo.id, BranchRow.name == ref))
    if branch_row is not None:
        if branch_row.head_id is None:
            raise CommitNotFound(f"branch {repo.name}@{ref} has no commits yet")
        row = _commit_row(s, branch_row.head_id, repo)
    elif (cid := commit_id(s, repo, ref)) is not None:
        row = _commit_row(s, cid, repo)
    elif is_id_prefix(ref):
        raise CommitNotFound(f"no branch or commit {ref!r} in repo {repo.name!r}")
    elif is_id_prefix(ref.ljust(ID_PREFIX_MIN, "0")):  # hex, but too short to be taken as a commit id
        raise BranchNotFound(f"branch {ref!r} not found in repo {repo.name!r} (a commit id prefix needs at"
                             f" least {ID_PREFIX_MIN} characters)")
    else:
        raise BranchNotFound(f"branch {ref!r} not found in repo {repo.name!r}")
    for step in range(ancestry):
        if row.parent_id is None:
            raise CommitNotFound(f"{repo.name}@{ref}^{ancestry}: history has only {step + 1} commit(s) on this line")
        row = _commit_row(s, row.parent_id, repo)
    return row


def resolve(s: Session, repo: RepoRow, ref: str, ancestry: int = 0) -> CommitRef:
    """``resolve_row`` as a value."""
    return CommitRef.of(resolve_row(s, repo, ref, ancestry))


def ancestry(s: Session, start: str | None, limit: int) -> Iterator[str]:
    """The ids of ``start`` and its parents, newest first, at most ``limit`` of them."""
    cur = start
    for _ in range(limit):
        if cur is None:
            return
        yield cur
        cur = s.scalar(select(CommitRow.parent_id).where(CommitRow.id == cur))


# -- heads and branches ----------------------------------------------------
def head_id(s: Session, repo_id: int, branch_name: str) -> str | None:
    return s.scalar(select(BranchRow.head_id).where(BranchRow.repo_id == repo_id, BranchRow.name == branch_name))


def head(s: Session, repo_id: int, branch_name: str) -> CommitRef | None:
    """The commit at a branch's head; None for a branch with no commit, or no such branch."""
    hid = head_id(s, repo_id, branch_name)
    return commit(s, hid) if hid else None


def branch(s: Session, repo_id: int, name: str) -> BranchRef | None:
    row = s.scalar(select(BranchRow).where(BranchRow.repo_id == repo_id, BranchRow.name == name))
    return BranchRef.of(row) if row is not None else None


def branch_exists(s: Session, repo_id: int, name: str) -> bool:
    return s.scalar(select(BranchRow.id).where(BranchRow.repo_id == repo_id, BranchRow.name == name)) is not None


def branches_at(s: Session, commit_ids: Iterable[str]) -> dict[str, list[str]]:
    """commit id → the names of the branches whose head it is (sorted)."""
    ids = list(commit_ids)
    out: dict[str, list[str]] = {}
    for at in range(0, len(ids), _IN_BATCH):
        for cid, name in s.execute(select(BranchRow.head_id, BranchRow.name)
                                   .where(BranchRow.head_id.in_(ids[at:at + _IN_BATCH]))):
            out.setdefault(cid or "", []).append(name)
    return {cid: sorted(names) for cid, names in out.items()}


def followers(s: Session, repo_id: int, branch_name: str) -> list[BranchRef]:
    """The branches of a repo whose trigger follows ``branch_name``."""
    return [BranchRef.of(b) for b in s.scalars(select(BranchRow).where(BranchRow.repo_id == repo_id,
                                                                       BranchRow.trigger_branch == branch_name))]


def trigger_follows(s: Session, repo_id: int) -> dict[str, str | None]:
    """branch name → the branch its trigger follows (None: no trigger), for every branch of a repo."""
    return {name: follows for name, follows in s.execute(
        select(BranchRow.name, BranchRow.trigger_branch).where(BranchRow.repo_id == repo_id))}


def compare_and_set_head(s: Session, repo_id: int, branch_name: str, expected: str | None, new: str) -> bool:
    """Move a branch's head to ``new`` only if it is still ``expected``; whether it moved."""
    same = BranchRow.head_id == expected if expected is not None else BranchRow.head_id.is_(None)
    moved = s.execute(update(BranchRow).where(BranchRow.repo_id == repo_id, BranchRow.name == branch_name, same)
                      .values(head_id=new).execution_options(synchronize_session=False))
    return bool(moved.rowcount)  # type: ignore[attr-defined]


def record_move(s: Session, repo_id: int, branch_name: str, from_commit: str | None, to_commit: str | None,
                actor: str, reason: str, moved_at: datetime, note: str | None = None) -> None:
    s.add(BranchMoveRow(repo_id=repo_id, branch=branch_name, from_commit=from_commit, to_commit=to_commit,
                        actor=actor, reason=reason, moved_at=moved_at, note=note))


def moves(s: Session, repo_id: int, branch_name: str) -> list[Move]:
    """Every move of a branch, newest first."""
    rows = s.scalars(select(BranchMoveRow).where(BranchMoveRow.repo_id == repo_id, BranchMoveRow.branch == branch_name)
                     .order_by(BranchMoveRow.id.desc()))
    return [Move(r.from_commit, r.to_commit, r.actor, r.reason, _aware(r.moved_at), r.note) for r in rows]


def last_move_at(s: Session, repo_id: int, branch_name: str) -> datetime | None:
    last = s.scalar(select(BranchMoveRow.moved_at).where(BranchMoveRow.repo_id == repo_id,
                                                         BranchMoveRow.branch == branch_name)
                    .order_by(BranchMoveRow.moved_at.desc()).limit(1))
    return _aware(last) if last is not None else None


# -- commit sets and provenance -----------------------------------------------
def open_in_set(s: Session, global_id: str) -> set[tuple[str, str]]:
    """(repo, branch) of every commit of the set that is still open."""
    rows = s.execute(select(RepoRow.name, CommitRow.branch).join(RepoRow, RepoRow.id == CommitRow.repo_id)
                     .where(CommitRow.commit_set_id == global_id, CommitRow.state == "open"))
    return {(repo, name) for repo, name in rows}


def finished_in_set(s: Session, repo_id: int, branch_name: str, global_id: str) -> str | None:
    """A finished commit of the set on that branch, if there is one."""
    return s.scalar(select(CommitRow.id).where(CommitRow.repo_id == repo_id, CommitRow.branch == branch_name,
                                               CommitRow.commit_set_id == global_id, CommitRow.state == "finished")
                    .limit(1))


def sources(s: Session, commit_id_: str) -> list[InputCommit]:
    """The input commits an output commit was computed from."""
    return [InputCommit(repo=p.source_repo, branch=p.source_branch, commit=p.source_commit_id) for p in s.scalars(
        select(CommitProvenanceRow).where(CommitProvenanceRow.commit_id == commit_id_))]


def children(s: Session, commit_id_: str) -> list[str]:
    """The commits computed from this one."""
    return list(s.scalars(select(CommitProvenanceRow.commit_id)
                          .where(CommitProvenanceRow.source_commit_id == commit_id_)))
