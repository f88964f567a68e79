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
    DatumCacheRow,
    DatumRunRow,
    JobRow,
    ModelManifestRow,
    PipelineRow,
    PipelineVersionRow,
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
    "DatumCacheRow",
    "DatumRunRow",
    "DbChunkIndex",
    "JobRow",
    "ModelManifestRow",
    "PipelineRow",
    "PipelineVersionRow",
    "RepoRow",
    "StagedOpRow",
]
