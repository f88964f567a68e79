from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "BranchMoveRow",
    "BranchRow",
    "ChunkIndexRow",
    "CommitProvenanceRow",
    "CommitRow",
    "CommitSetRow",
    "RepoRow",
    "StagedOpRow",
]


class Base(DeclarativeBase):
    pass


class RepoRow(Base):
    __tablename__ = "repos"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BranchRow(Base):
    __tablename__ = "branches"
    __table_args__ = (UniqueConstraint("repo_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    head_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CommitSetRow(Base):
    """A global id: the user commit that started it and everything it caused."""

    __tablename__ = "commit_sets"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CommitRow(Base):
    __tablename__ = "commits"
    __table_args__ = (
        Index("ix_commits_repo_started", "repo_id", "started_at"),
        Index("ix_commits_parent", "parent_id"),
        Index("ix_commits_set", "commit_set_id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    branch: Mapped[str] = mapped_column(String(63))
    parent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    origin: Mapped[str] = mapped_column(String(16), default="user")
    description: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16))  # open | finished | failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    tree_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    commit_set_id: Mapped[str] = mapped_column(ForeignKey("commit_sets.id"))
    author: Mapped[str] = mapped_column(String(255), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CommitProvenanceRow(Base):
    """The exact input commits an output commit was computed from."""

    __tablename__ = "commit_provenance"
    commit_id: Mapped[str] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"), primary_key=True)
    source_commit_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source_repo: Mapped[str] = mapped_column(String(63))
    source_branch: Mapped[str] = mapped_column(String(63))


class StagedOpRow(Base):
    """A change made in an open commit, applied in order when it finishes."""

    __tablename__ = "staged_ops"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    commit_id: Mapped[str] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"), index=True)
    op: Mapped[str] = mapped_column(String(16))  # put | delete | append
    path: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class ChunkIndexRow(Base):
    """Where a packed chunk lives, so small files dedup across commits and writers."""

    __tablename__ = "chunk_index"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    pack: Mapped[str] = mapped_column(String(32))
    offset: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)


class BranchMoveRow(Base):
    """Every move of a branch head: who, when, from and to."""

    __tablename__ = "branch_moves"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)
    branch: Mapped[str] = mapped_column(String(63))
    from_commit: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_commit: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(32))
    moved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
