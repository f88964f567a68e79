from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    literal_column,
    not_,
    or_,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "DATUM_TROUBLED",
    "AlgorithmVersionRow",
    "ApiTokenRow",
    "Base",
    "BranchMoveRow",
    "BranchRow",
    "ChunkIndexRow",
    "CommitProvenanceRow",
    "CommitRow",
    "CommitSetRow",
    "DatumCacheRow",
    "DatumRunRow",
    "DeploymentRevisionRow",
    "DeploymentRow",
    "GcFenceRow",
    "JobRow",
    "LeaseRow",
    "PipelineRow",
    "PipelineVersionRow",
    "RepoRow",
    "RoleBindingRow",
    "SecretRow",
    "StagedOpRow",
    "TransactionRow",
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
    # deferred processing: move this branch to trigger_branch's head when the conditions hold
    trigger_branch: Mapped[str | None] = mapped_column(String(63), nullable=True)
    trigger_commits: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trigger_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    trigger_cron: Mapped[str | None] = mapped_column(String(255), nullable=True)
    trigger_all: Mapped[bool] = mapped_column(default=False, server_default=false())


class CommitSetRow(Base):
    """A global id: the user commit that started it and everything it caused."""

    __tablename__ = "commit_sets"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CommitRow(Base):
    __tablename__ = "commits"
    __table_args__ = (
        Index("ix_commits_repo_started", "repo_id", "started_at", "id"),  # a repo's commits in order (a page:
        #                                                                   an index range; id breaks ties)
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
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the job that wrote an output commit
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
    """Every move of a branch head: who, when, from and to; ``reason`` is the kind of move (commit, promote,
    rollback, trigger, ...), ``note`` what the person who promoted or rolled back wrote about why."""

    __tablename__ = "branch_moves"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)
    branch: Mapped[str] = mapped_column(String(63))
    from_commit: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_commit: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(32))
    moved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # its length limit is enforced in code


class PipelineRow(Base):
    __tablename__ = "pipelines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    version: Mapped[int] = mapped_column(Integer)  # current spec version
    state: Mapped[str] = mapped_column(String(16))  # running | stopped
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PipelineVersionRow(Base):
    """Every spec a pipeline has had; jobs record the version they ran."""

    __tablename__ = "pipeline_versions"
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec_json: Mapped[str] = mapped_column(Text)
    salt: Mapped[str] = mapped_column(String(64))
    code_dir: Mapped[str] = mapped_column(Text)  # where the code came from; jobs run there only without code_tree
    code_info: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: git commit/ref/remote, code digest
    # the stored code (a tree digest, docs/decisions/0009); NULL for versions made before code was stored
    code_tree: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_pipeline_state", "pipeline_id", "state"), Index("ix_jobs_set", "global_id"),
                      Index("ix_jobs_pipeline_created", "pipeline_id", "created_at", "id"))  # its jobs in order
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"))
    pipeline_version: Mapped[int] = mapped_column(Integer)
    global_id: Mapped[str] = mapped_column(String(32))
    input_commits: Mapped[str] = mapped_column(Text)  # JSON: [{repo, branch, commit}]
    output_commit_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    state: Mapped[str] = mapped_column(String(16))  # created | running | interrupted | success | failure | killed
    #                                                 | unrunnable
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)  # host:pid running it
    # the owner renews this while it runs the job; past it, another scheduler may take the job over
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    datums_total: Mapped[int] = mapped_column(Integer, default=0)
    datums_processed: Mapped[int] = mapped_column(Integer, default=0)
    datums_skipped: Mapped[int] = mapped_column(Integer, default=0)
    datums_failed: Mapped[int] = mapped_column(Integer, default=0)
    # the job whose rows list the datums this one skipped with the same outcome (tusk.pipelines.datum_rows);
    # None: the job has a row for each of its datums
    datums_base: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DatumRunRow(Base):
    """One datum of one job: its outcome, timings, bytes and log."""

    __tablename__ = "datum_runs"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    datum_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hash: Mapped[str] = mapped_column(String(64))
    # success | skipped | failed | recovered; gone: a datum of the base job that this job does not have
    state: Mapped[str] = mapped_column(String(16))
    inputs: Mapped[str] = mapped_column(Text)  # JSON: [{name, repo, path, commit}]
    output_tree: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    download_seconds: Mapped[float] = mapped_column(default=0.0)
    process_seconds: Mapped[float] = mapped_column(default=0.0)
    upload_seconds: Mapped[float] = mapped_column(default=0.0)
    download_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    upload_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    log: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# The datums a job's page lists first: failed, or recovered with an error. Two partial indexes (migration 0012)
# split a job's datums into these and the others, each in datum id order, so a page of either is a range of
# one index: a deep page skips index entries, never reads the rows it skips, and nothing sorts all the datums.
# (The literal is inline: a planner matches a query to a partial index by its text; a bound one would not.)
DATUM_TROUBLED = or_(DatumRunRow.state == literal_column("'failed'"), DatumRunRow.error.is_not(None))
Index("ix_datum_runs_troubled", DatumRunRow.job_id, DatumRunRow.datum_id, sqlite_where=DATUM_TROUBLED,
      postgresql_where=DATUM_TROUBLED)
Index("ix_datum_runs_untroubled", DatumRunRow.job_id, DatumRunRow.datum_id, sqlite_where=not_(DATUM_TROUBLED),
      postgresql_where=not_(DATUM_TROUBLED))


class DatumCacheRow(Base):
    """Datum hash → its output tree: a datum seen before is skipped and its output reused."""

    __tablename__ = "datum_cache"
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    output_tree: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(String(32))


class ModelManifestRow(Base):
    """The manifest of a commit that holds model files: hashes, training provenance, metrics (immutable)."""

    __tablename__ = "model_manifests"
    __table_args__ = (Index("ix_model_manifests_repo", "repo_id", "created_at"),)
    commit_id: Mapped[str] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"), primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64))  # BLAKE3 of the canonical manifest encoding
    body: Mapped[str] = mapped_column(Text)  # the manifest, canonical JSON
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeploymentRow(Base):
    """A serving deployment: its current spec (the latest revision)."""

    __tablename__ = "deployments"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    spec: Mapped[str] = mapped_column(Text)  # canonical JSON of the DeploymentSpec
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeploymentRevisionRow(Base):
    """Every spec a deployment has had, so a rollout can be rolled back (immutable)."""

    __tablename__ = "deployment_revisions"
    name: Mapped[str] = mapped_column(ForeignKey("deployments.name", ondelete="CASCADE"), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(32))  # create | update | rollout | rollback
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AlgorithmVersionRow(Base):
    """A published algorithm version: owner/name/X.Y.Z → the commit holding its files (immutable)."""

    __tablename__ = "algorithm_versions"
    __table_args__ = (UniqueConstraint("owner", "name", "major", "minor", "patch"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(63))
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer)
    patch: Mapped[int] = mapped_column(Integer)
    commit_id: Mapped[str] = mapped_column(ForeignKey("commits.id", ondelete="RESTRICT"))
    spec: Mapped[str] = mapped_column(Text)  # canonical JSON of algorithm.yaml, model refs pinned to commits
    actor: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiTokenRow(Base):
    """An API token: only a hash of its secret is kept; revoked or expired tokens stay for the record."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    user: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(255))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RoleBindingRow(Base):
    """A user's role on a repo (reader | writer | owner), or on the cluster (resource ``*``: admin)."""

    __tablename__ = "role_bindings"
    resource: Mapped[str] = mapped_column(String(128), primary_key=True)
    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LeaseRow(Base):
    """A named duty (``cron``) held by one scheduler until ``expires_at``; the holder renews it."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class GcFenceRow(Base):
    """The one row (id 1) that fences ``gc`` against writers (docs/decisions/0014-gc.md).

    ``generation`` goes up each time a gc begins to delete; ``holder`` runs
    that gc until ``expires_at`` (renewed while it runs). A writer notes the
    generation when it starts and, when it lands, checks it in the same
    transaction: unchanged, nothing it relies on can have been swept.
    """

    __tablename__ = "gc_fence"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str | None] = mapped_column(String(255), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class StoreIdentityRow(Base):
    """The one row (id 1) naming this store: a random id made when the store was created (migration 0011).
    What a machine caches about a store (``tusk.versioning.statcache``) is keyed by it."""

    __tablename__ = "store_identity"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[str] = mapped_column(String(32))


class SecretRow(Base):
    """A named map of keys to values that pipelines read (``transform.secrets``; migration 0013).

    ``keys`` lists the key names in the clear (what ``secret list`` shows); ``sealed`` holds the values,
    encrypted with the key file in the Tusk home (``tusk.pipelines.secrets``): never in object storage, and
    not archived by ``tusk extract``.
    """

    __tablename__ = "secrets"
    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    keys: Mapped[str] = mapped_column(Text)  # JSON list of the key names, sorted
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TransactionRow(Base):
    """A transaction being drafted (``tusk start transaction``; migration 0014): the requests it will run, in
    order, as a JSON list. The row goes when the transaction is finished or deleted (``tusk.versioning.transactions``).
    """

    __tablename__ = "transactions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    author: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    requests: Mapped[str] = mapped_column(Text)  # JSON list of request objects, in the order they were added
