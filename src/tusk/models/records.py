"""What the model service returns: plain records, printable as tables or JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tusk.versioning.records import _Record

__all__ = ["BranchMove", "ModelInfo"]


@dataclass(frozen=True)
class ModelInfo(_Record):
    repo: str
    commit: str
    branch: str  # the branch the commit was made on
    aliases: list[str]  # the branches that point at it now (production, staging, ...)
    models: list[str]  # "path (flavor)"
    created_at: datetime
    pipeline: str | None
    global_id: str
    manifest_digest: str
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BranchMove(_Record):
    repo: str
    branch: str
    from_commit: str | None
    to_commit: str | None
    actor: str
    reason: str  # the kind of move: commit, promote, rollback, trigger, delete, branch
    moved_at: datetime
    note: str | None = None  # why, in the words of who promoted or rolled back (None if they gave none)
