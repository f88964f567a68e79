"""Metadata: SQLAlchemy 2 models, Alembic migrations, SQLite and PostgreSQL."""

from tusk.storage.metadata._chunk_index import DbChunkIndex
from tusk.storage.metadata._db import Database
from tusk.storage.metadata.models import (
    AlgorithmVersionRow,
    Base,
    BranchMoveRow,
    BranchRow,
    ChunkIndexRow,
    CommitProvenanceRow,
    CommitRow,
    CommitSetRow,
    DatumCacheRow,
    DatumRunRow,
    DeploymentRevisionRow,
    DeploymentRow,
    JobRow,
    ModelManifestRow,
    PipelineRow,
    PipelineVersionRow,
    RepoRow,
    StagedOpRow,
)

__all__ = [
    "AlgorithmVersionRow",
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
    "DeploymentRevisionRow",
    "DeploymentRow",
    "JobRow",
    "ModelManifestRow",
    "PipelineRow",
    "PipelineVersionRow",
    "RepoRow",
    "StagedOpRow",
]
