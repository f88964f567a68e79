"""Metadata: SQLAlchemy 2 models, Alembic migrations, SQLite and PostgreSQL."""

from tusk.storage.metadata._chunk_index import DbChunkIndex
from tusk.storage.metadata._db import Database
from tusk.storage.metadata.models import (
    Base,
    BranchMoveRow,
    BranchRow,
    ChunkIndexRow,
    CommitProvenanceRow,
    CommitRow,
    CommitSetRow,
    RepoRow,
    StagedOpRow,
)

__all__ = [
    "Base",
    "BranchMoveRow",
    "BranchRow",
    "ChunkIndexRow",
    "CommitProvenanceRow",
    "CommitRow",
    "CommitSetRow",
    "Database",
    "DbChunkIndex",
    "RepoRow",
    "StagedOpRow",
]
