"""tusk.Client: the Python SDK, one class over two transports.

Embedded (no ``TUSK_ADDRESS``), the operations run in-process over the services (SQLite + local objects by
default, or whatever ``TUSK_DATABASE_URL`` / ``TUSK_OBJECTS_URL`` name): ``tusk.sdk._local``. With
``TUSK_ADDRESS`` set they go to that ``tusk server`` over HTTP: ``tusk.sdk._http``. Both implement
``tusk.sdk._operations.Operations``; this class adds what is the same on both, once: the active transaction,
``subscribe_commits``, writers that commit on close, ``raise_for_jobs``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

from tusk.config import Settings
from tusk.errors import Conflict, InvalidArgument, InvalidRef, JobFailed
from tusk.sdk._operations import Operations, Progress, Source, file_ref, writable
from tusk.sdk._pipelines import FAILED_STATES, describe_failures
from tusk.sdk._transactions import guard_writes
from tusk.versioning.refs import FileRef, parse_ref

if TYPE_CHECKING:

    from tusk.algorithms.registry import AlgorithmHandle, AlgorithmVersion
    from tusk.auth import RoleBinding, TokenInfo
    from tusk.deployments.registry import DeploymentInfo, DeploymentRevision
    from tusk.deployments.spec import DeploymentSpec
    from tusk.images.store import ImageInfo
    from tusk.models.loaders import LoadedModel
    from tusk.models.manifest import Manifest
    from tusk.models.records import BranchMove, ModelInfo
    from tusk.pipelines.datums import Datum
    from tusk.pipelines.records import DatumInfo, JobInfo, PipelineInfo
    from tusk.pipelines.secrets import SecretInfo
    from tusk.sdk._pipelines import CodeUpload, JobProgress, SpecSource
    from tusk.sdk._secrets import SecretSource
    from tusk.services import Services
    from tusk.versioning.archive import ArchiveReport
    from tusk.versioning.loading import Loader
    from tusk.versioning.records import BranchInfo, CommitInfo, DiffEntry, FileInfo, FsckReport, GcReport, RepoInfo
    from tusk.versioning.transactions import Preview, TransactionInfo
    from tusk.versioning.triggers import BranchTrigger

__all__ = ["Client", "FileWriter"]


def _settings(home: str | Path | None, settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    return Settings.for_home(Path(home)) if home is not None else Settings.from_env()


class FileWriter(io.RawIOBase):
    """A file-like writer; the file is committed (or staged) on ``close()``."""

    def __init__(self, client: Client, ref: FileRef, append: bool) -> None:
        super().__init__()
        self._client, self._ref, self._append = client, ref, append
        self._buf = io.BytesIO()
        self.commit: CommitInfo | None = None

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        return self._buf.write(b)

    def close(self) -> None:
        if not self.closed:
            try:
                self._buf.seek(0)
                self.commit = self._client.put_file(self._ref, self._buf, append=self._append)
            finally:
                super().close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:  # discard: an exception means the content is not complete
            super().close()
            return
        self.close()


@guard_writes
class Client:
    """Everything the ``tusk`` CLI can do, as methods, embedded or against a server.

    Jobs triggered by a write run (embedded), or are waited for (remote), before the write returns
    (``run_jobs=False`` leaves them queued: ``run_pending_jobs()`` runs them). A job that fails does not fail
    the write (it landed): ``last_jobs`` holds the jobs the write waited for, and ``raise_for_jobs()`` raises
    ``JobFailed`` if one failed.

    >>> c = Client()
    >>> c.create_repo("images")
    >>> c.put_file("images@master:/cat.png", Path("cat.png"))
    >>> c.get_file("images@master:/cat.png")[:4]
    """

    def __init__(self, home: str | Path | None = None, settings: Settings | None = None, run_jobs: bool = True,
                 job_progress: JobProgress | None = None, services: Services | None = None, *,
                 transport: Operations | None = None) -> None:
        """The transport: in-process over ``services`` (shared, as the API server does) or over the store
        ``home``/``settings`` name; or, when the settings (``TUSK_ADDRESS``) name a server and no ``home`` is
        given, HTTP to it. ``transport``: one built already (``HttpOperations(settings, transport=...)`` over an
        httpx transport, say), which carries its own settings, so nothing else may be given with it."""
        if transport is not None:
            given = [name for name, value in (("home", home), ("settings", settings), ("services", services),
                                              ("job_progress", job_progress)) if value is not None]
            if not run_jobs:
                given.append("run_jobs")
            if given:
                raise InvalidArgument(f"Client(transport=...) takes the transport's own settings; do not also give "
                                      f"{', '.join(given)} (set them on the transport)")
        else:
            chosen = services.settings if services is not None else _settings(home, settings)
            if services is None and chosen.address:
                from tusk.sdk._http import HttpOperations

                transport = HttpOperations(chosen, run_jobs, job_progress)
            else:
                from tusk.sdk._local import LocalOperations

                transport = LocalOperations(chosen, run_jobs, job_progress, services)
        self.transport: Operations = transport
        self.active_transaction: str | None = None  # where this client's batched calls go (None: they run)
        self.batched: list[dict[str, Any]] = []  # the requests this client added to it (the CLI says so)

    @property
    def settings(self) -> Settings:
        return self.transport.settings

    @property
    def services(self) -> Services:
        """The in-process services (a remote client has none, and says so)."""
        return self.transport.services

    @property
    def remote(self) -> bool:
        """Whether this client talks to a server."""
        return self.transport.remote

    @property
    def runtime_note(self) -> str | None:
        """Why pipelines do not run sandboxed here, if they do not."""
        return self.transport.runtime_note

    @property
    def run_jobs(self) -> bool:
        """Whether writes run (embedded) or wait for (remote) the jobs they trigger."""
        return self.transport.run_jobs

    @run_jobs.setter
    def run_jobs(self, value: bool) -> None:
        self.transport.run_jobs = value

    @property
    def job_progress(self) -> JobProgress | None:
        return self.transport.job_progress

    @job_progress.setter
    def job_progress(self, value: JobProgress | None) -> None:
        self.transport.job_progress = value

    @property
    def last_jobs(self) -> list[JobInfo]:
        """The jobs the latest call that waited for jobs waited for."""
        return self.transport.last_jobs

    @property
    def interrupted(self) -> list[str]:
        """The commit sets whose jobs a Ctrl-C interrupted (they resume on the next run)."""
        return self.transport.interrupted

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- repos, branches, commits, files and the store -------------------------------------------
    def create_repo(self, name: str, description: str = "") -> RepoInfo:
        return self.transport.create_repo(name, description)

    def inspect_repo(self, name: str) -> RepoInfo:
        return self.transport.inspect_repo(name)

    def list_repos(self) -> list[RepoInfo]:
        return self.transport.list_repos()

    def delete_repo(self, name: str, force: bool = False) -> None:
        self.transport.delete_repo(name, force)

    def create_branch(self, ref: str, head: str | None = None, trigger: BranchTrigger | None = None) -> BranchInfo:
        """Create a branch (or move it with ``head``); ``trigger`` makes it follow another branch on conditions."""
        return self.transport.create_branch(ref, head, trigger)

    def list_branches(self, repo: str) -> list[BranchInfo]:
        return self.transport.list_branches(repo)

    def delete_branch(self, ref: str) -> None:
        self.transport.delete_branch(ref)

    def start_commit(self, ref: str, description: str = "") -> CommitInfo:
        return self.transport.start_commit(ref, description)

    def finish_commit(self, ref: str, description: str | None = None) -> CommitInfo:
        """Finish an open commit named by ``repo@commitid`` or ``repo@branch``."""
        return self.transport.finish_commit(ref, description)

    def inspect_commit(self, ref: str) -> CommitInfo:
        return self.transport.inspect_commit(ref)

    def inspect_commit_set(self, global_id: str) -> list[CommitInfo]:
        return self.transport.inspect_commit_set(global_id)

    def list_commits(self, ref: str, limit: int | None = None, offset: int = 0) -> list[CommitInfo]:
        """Newest first (with a branch: its history); ``offset`` skips that many, for a page."""
        return self.transport.list_commits(ref, limit, offset)

    def subscribe_commits(self, ref: str, new: bool = False, poll: float = 0.5, timeout: float | None = None,
                          since: str | None = None) -> Iterator[CommitInfo]:
        """Each finished commit of a branch as it lands, oldest first (``pachctl subscribe commit``): the
        commits already there first, unless ``new`` (or only those after the commit ``since``). Ends after
        ``timeout`` seconds, if given."""
        import time

        repo, branch, anc = parse_ref(ref)
        if anc:
            raise InvalidRef(f"{ref}: subscribe to a branch, not an ancestry ref")
        if new and since is not None:
            raise InvalidArgument("--new and --from cannot both be given: --new is from now, --from from a commit")
        after = self.inspect_commit(f"{repo}@{since}").id if since is not None else None
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: set[str] = set()
        first = True
        while True:
            commits = self.list_commits(f"{repo}@{branch}", None if first else 256)
            landed = [c for c in reversed(commits) if c.state != "open" and c.id not in seen]
            seen.update(c.id for c in commits if c.state != "open")
            if first and after is not None:
                ids = [c.id for c in landed]
                landed = landed[ids.index(after) + 1:] if after in ids else []
            if not (first and new):
                yield from landed
            first = False
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))

    def wait_commit(self, ref: str, timeout: float | None = None) -> CommitInfo:
        return self.transport.wait_commit(ref, timeout)

    def squash_commit(self, ref: str) -> None:
        self.transport.squash_commit(ref)

    def delete_commit(self, ref: str) -> None:
        self.transport.delete_commit(ref)

    def modify(self, ref: str, description: str | None = None, progress: Progress | None = None
               ) -> Loader:
        """A batch of changes landing as one commit: ``with c.modify("r@master") as m: m.put_bytes(...)``."""
        return self.transport.modify(ref, description, progress)

    def put_file(self, dest: str | FileRef, source: Source, *, append: bool = False, recursive: bool = False,
                 description: str | None = None, progress: Progress | None = None) -> CommitInfo | None:
        """Put bytes, a local file, a local directory (``recursive=True``) or a stream at ``dest``.

        Returns the new commit, or None when the change was staged in an open commit.
        """
        return self.transport.put_file(dest, source, append=append, recursive=recursive, description=description,
                                       progress=progress)

    def open(self, ref: str, mode: str = "rb") -> BinaryIO | FileWriter:
        """``rb`` streams a file (verified chunk by chunk); ``wb``/``ab`` write on close."""
        if mode == "rb":
            return self.transport.open_file(ref)
        if mode in ("wb", "ab"):
            return FileWriter(self, writable(file_ref(ref)), append=mode == "ab")
        raise InvalidArgument(f"unsupported mode {mode!r}: use 'rb', 'wb' or 'ab'")

    def get_file(self, ref: str, start: int = 0, end: int | None = None) -> bytes:
        """The file's bytes, or bytes ``[start, end)`` of it (clamped to its size, as a slice is)."""
        return self.transport.get_file(ref, start, end)

    def iter_file(self, ref: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The file's bytes as they are read, or bytes ``[start, end)`` of it: only the chunks that hold them."""
        return self.transport.iter_file(ref, start, end)

    def download(self, ref: str, dest: str | Path, progress: Progress | None = None) -> int:
        return self.transport.download(ref, dest, progress)

    def inspect_file(self, ref: str) -> FileInfo:
        return self.transport.inspect_file(ref)

    def list_files(self, ref: str, limit: int | None = None, offset: int = 0) -> list[FileInfo]:
        """A directory's entries in name order; ``offset`` skips that many, ``limit`` keeps at most that many."""
        return self.transport.list_files(ref, limit, offset)

    def walk_files(self, ref: str) -> Iterator[FileInfo]:
        return self.transport.walk_files(ref)

    def glob_files(self, ref: str) -> list[FileInfo]:
        return self.transport.glob_files(ref)

    def diff_files(self, new: str, old: str | None = None, limit: int | None = None, offset: int = 0
                   ) -> list[DiffEntry]:
        """What changed from ``old`` (default: new's parent) to ``new``, in path order; ``offset`` skips that
        many, ``limit`` keeps at most that many."""
        return self.transport.diff_files(new, old, limit, offset)

    def delete_file(self, ref: str, description: str | None = None) -> CommitInfo | None:
        return self.transport.delete_file(ref, description)

    def copy_file(self, src: str, dest: str, description: str | None = None) -> CommitInfo | None:
        """Copy a file or directory by reference: no bytes are duplicated."""
        return self.transport.copy_file(src, dest, description)

    def fsck(self, verify_chunks: bool = True, repair: bool = False) -> FsckReport:
        """Verify every commit's tree and chunks; ``repair`` rewrites bad chunks from any good stored copy."""
        return self.transport.fsck(verify_chunks, repair)

    def gc(self, dry_run: bool = False, grace: float | None = None) -> GcReport:
        """Delete every object nothing refers to that is older than ``grace`` seconds (default: an hour);
        ``dry_run`` only reports. Safe while writers run (docs/decisions/0014-gc.md)."""
        return self.transport.gc(dry_run, grace)

    def extract(self, dest: str | Path | BinaryIO) -> ArchiveReport:
        """Write the whole store (every metadata row and every object) as one archive to a binary stream, a
        local file or an ``s3://bucket/key`` URL (docs/extract-restore.md)."""
        return self.transport.extract(dest)

    def restore(self, src: str | Path | BinaryIO) -> ArchiveReport:
        """Load an archive into this store, which must be empty, then fsck it (``report.fsck``)."""
        return self.transport.restore(src)

    # -- secrets ---------------------------------------------------------------------------------
    def create_secret(self, manifest: SecretSource | None = None, *, name: str | None = None,
                      literals: Mapping[str, str | bytes] | None = None) -> SecretInfo:
        """Make a secret from a Kubernetes Secret manifest (a dict, or a JSON/YAML file as ``pachctl create
        secret -f`` takes: ``metadata.name``, ``data`` in base64, ``stringData``), or from ``name`` and
        ``literals``. Its creator is you; it shows its keys, never its values."""
        return self.transport.create_secret(manifest, name=name, literals=literals)

    def list_secrets(self) -> list[SecretInfo]:
        return self.transport.list_secrets()

    def inspect_secret(self, name: str) -> SecretInfo:
        return self.transport.inspect_secret(name)

    def delete_secret(self, name: str) -> None:
        """Delete a secret; refused (Conflict) while a pipeline's current version names it."""
        self.transport.delete_secret(name)

    # -- images ----------------------------------------------------------------------------------
    def import_image(self, path: str | Path, tag: str | None = None) -> list[ImageInfo]:
        """Import the images of a ``docker save`` archive or an OCI layout (a tar, or a directory); ``tag``
        names the image (``NAME:TAG``) when the archive holds one. Layers already stored are not stored again."""
        return self.transport.import_image(path, tag)

    def list_images(self) -> list[ImageInfo]:
        return self.transport.list_images()

    def inspect_image(self, ref: str) -> ImageInfo:
        """An imported image by tag (``busybox``, ``app:v2``), id or short id, or ``NAME@sha256:DIGEST``."""
        return self.transport.inspect_image(ref)

    def delete_image(self, ref: str, force: bool = False) -> list[str]:
        """Untag an image (by id: every tag); its layers go once no tag names it and no pipeline version runs it
        (refused while one does, unless ``force``, which drops the tag and keeps the layers). Says what it did."""
        return self.transport.delete_image(ref, force)

    # -- transactions ----------------------------------------------------------------------------
    def start_transaction(self, activate: bool = True) -> TransactionInfo:
        """Start a transaction and make it this client's active one (``pachctl start transaction``); with
        ``activate=False`` only start it (requests go to it by id: ``add_transaction_request``)."""
        if activate and self.active_transaction is not None:
            raise Conflict(f"cannot start a new transaction: transaction {self.active_transaction} is active; "
                           "finish, delete or stop it first")
        info = self.transport.start_transaction()
        if activate:
            self.active_transaction, self.batched = info.id, []
        return info

    def finish_transaction(self, txn_id: str | None = None) -> TransactionInfo:
        """Run a transaction's requests together (the active one by default), then the jobs they trigger."""
        info = self.transport.finish_transaction(self._chosen(txn_id))
        self._forget(info.id)
        return info

    def delete_transaction(self, txn_id: str | None = None) -> TransactionInfo:
        """Discard a transaction (the active one by default): none of its requests runs."""
        info = self.transport.delete_transaction(self._chosen(txn_id))
        self._forget(info.id)
        return info

    def inspect_transaction(self, txn_id: str | None = None) -> TransactionInfo:
        return self.transport.inspect_transaction(self._chosen(txn_id))

    def stop_transaction(self) -> str:
        """Stop adding to the active transaction; it stays, to finish, delete or resume later. Returns its id."""
        txn = self._chosen(None)
        self.active_transaction = None
        return txn

    def resume_transaction(self, txn_id: str) -> TransactionInfo:
        """Make an existing transaction the active one again."""
        info = self.transport.inspect_transaction(txn_id)
        self.active_transaction, self.batched = info.id, []
        return info

    def transaction(self) -> AbstractContextManager[TransactionInfo]:
        """``with client.transaction():`` the batched calls in the block run together at its end; an exception
        deletes the transaction instead."""
        return self._transaction_block()

    @contextmanager
    def _transaction_block(self) -> Iterator[TransactionInfo]:
        info = self.start_transaction()
        try:
            yield info
        except BaseException:
            with suppress(Exception):
                self.delete_transaction(info.id)
            self.active_transaction = None
            raise
        self.finish_transaction(info.id)

    def _chosen(self, txn_id: str | None) -> str:
        txn = txn_id or self.active_transaction
        if txn is None:
            raise InvalidArgument("no active transaction: name one (`tusk list transaction` shows them) or start "
                                  "one with `tusk start transaction`")
        return txn

    def _forget(self, txn_id: str) -> None:
        if self.active_transaction == txn_id:
            self.active_transaction = None

    def add_transaction_request(self, txn_id: str, request: dict[str, Any]) -> tuple[TransactionInfo, Preview]:
        """Add a request (``{"op": "start_commit", "repo": ..., "branch": ...}``) to transaction ``txn_id`` after a
        dry run: the transaction as it now is, and what the request will return (a started commit, with its id)."""
        return self.transport.add_transaction_request(txn_id, request)

    def list_transactions(self) -> list[TransactionInfo]:
        """The transactions not finished or deleted yet, oldest first."""
        return self.transport.list_transactions()

    # -- auth ------------------------------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        return self.transport.whoami()

    def create_token(self, user: str | None = None, description: str = "", ttl_seconds: float | None = None
                     ) -> tuple[TokenInfo, str]:
        """A token for ``user`` (default: you): (its record, the token text, shown only now)."""
        return self.transport.create_token(user, description, ttl_seconds)

    def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        return self.transport.list_tokens(user)

    def revoke_token(self, token_id: str) -> TokenInfo:
        return self.transport.revoke_token(token_id)

    def set_role(self, resource: str, user: str, role: str | None) -> RoleBinding | None:
        """Give ``user`` a role (reader, writer, owner; admin on ``*``) on a resource; None removes it."""
        return self.transport.set_role(resource, user, role)

    def list_roles(self, resource: str | None = None, user: str | None = None) -> list[RoleBinding]:
        return self.transport.list_roles(resource, user)

    def activate_auth(self, admin: str) -> tuple[TokenInfo, str]:
        """Make ``admin`` the first cluster admin and return their token; refused once an admin exists."""
        return self.transport.activate_auth(admin)

    # -- deployments and algorithms --------------------------------------------------------------
    def create_deployment(self, spec: DeploymentSpec | dict[str, Any] | str | Path) -> DeploymentInfo:
        """Create a deployment from a spec (object, dict, or JSON/YAML file); every model ref must resolve."""
        return self.transport.create_deployment(spec)

    def update_deployment(self, spec: DeploymentSpec | dict[str, Any] | str | Path) -> DeploymentInfo:
        return self.transport.update_deployment(spec)

    def rollout(self, name: str, weights: dict[str, float]) -> DeploymentInfo:
        """New traffic weights, e.g. ``{"canary": 25}``; servers pick them up within a poll interval."""
        return self.transport.rollout(name, weights)

    def rollback_deployment(self, name: str, revision: int | None = None) -> DeploymentInfo:
        """Back to the previous revision's spec (or ``revision``'s), as a new revision."""
        return self.transport.rollback_deployment(name, revision)

    def inspect_deployment(self, name: str) -> DeploymentInfo:
        return self.transport.inspect_deployment(name)

    def list_deployments(self) -> list[DeploymentInfo]:
        return self.transport.list_deployments()

    def deployment_history(self, name: str) -> list[DeploymentRevision]:
        return self.transport.deployment_history(name)

    def delete_deployment(self, name: str) -> None:
        self.transport.delete_deployment(name)

    def publish_algorithm(self, directory: str | Path, name: str, version: str) -> AlgorithmVersion:
        """Publish the directory (with its algorithm.yaml) as ``owner/name/version``; versions are immutable."""
        return self.transport.publish_algorithm(directory, name, version)

    def list_algorithms(self, name: str | None = None) -> list[AlgorithmVersion]:
        return self.transport.list_algorithms(name)

    def algo(self, ref: str) -> AlgorithmHandle:
        """``client.algo("owner/name/1.2").pipe(x)`` → response with ``.result`` and ``.metadata``."""
        return self.transport.algo(ref)

    # -- models ----------------------------------------------------------------------------------
    def list_models(self, repo: str | None = None, limit: int | None = None) -> list[ModelInfo]:
        """Model commits (those with a manifest), newest first, with the branches pointing at them."""
        return self.transport.list_models(repo, limit)

    def model_manifest(self, ref: str) -> Manifest:
        """The manifest of ``repo@ref``: file hashes, training provenance, metrics, creation time."""
        return self.transport.model_manifest(ref)

    def load_model(self, ref: str) -> LoadedModel:
        """``repo@ref[:/path]`` → a model with ``predict``; refused if any file differs from its manifest."""
        return self.transport.load_model(ref)

    def verify_model(self, ref: str) -> Manifest:
        """Re-hash every file of the model commit against its manifest (ModelTampered on a mismatch)."""
        return self.transport.verify_model(ref)

    def export_model(self, ref: str, dest: str | Path) -> Manifest:
        """Write the model's files and tusk-manifest.json into ``dest`` (load them with tusk.models.load_dir)."""
        return self.transport.export_model(ref, dest)

    def promote_model(self, ref: str, to: str, note: str | None = None) -> BranchMove:
        """Point branch ``to`` (e.g. production) at the model commit ``ref``; pipelines reading it re-run.

        ``note`` says why, in a line of at most 1000 characters; the history keeps it with the move.
        """
        return self.transport.promote_model(ref, to, note)

    def rollback_model(self, ref: str, steps: int = 1, note: str | None = None) -> BranchMove:
        """``repo@branch``: move the branch back to the model it had before its last ``steps`` promotions.

        ``note`` says why (as for ``promote_model``).
        """
        return self.transport.rollback_model(ref, steps, note)

    def model_history(self, ref: str) -> list[BranchMove]:
        """``repo@branch``: every move of the branch, newest first, with who, when, its kind and its note."""
        return self.transport.model_history(ref)

    # -- pipelines, jobs, datums, logs and lineage -----------------------------------------------
    def raise_for_jobs(self) -> None:
        """Raise ``JobFailed`` (with ``.jobs``) if a job the latest waiting call waited for did not succeed.

        Writes return normally when their jobs fail, since the write landed; call this (as the CLI does, for
        its exit code) to turn a failed job into an exception, like ``httpx.Response.raise_for_status``.
        """
        failed = [j for j in self.last_jobs if j.state in FAILED_STATES]
        if failed:
            raise JobFailed(describe_failures(failed, self.list_datums), failed)

    def run_pending_jobs(self, progress: JobProgress | None = None, *, wait_for_held: bool = False
                         ) -> list[JobInfo]:
        """Run every queued job now, in DAG order (and take over those whose runner's lease lapsed).

        ``wait_for_held``: also wait for the jobs other runners hold, until no job is active, as a server's
        ``POST /api/v1/jobs/run-pending`` (what a remote client calls) does.
        """
        return self.transport.run_pending_jobs(progress, wait_for_held=wait_for_held)

    def finish_caused_jobs(self, wait: bool) -> list[JobInfo]:
        """The jobs this client's writes triggered since the last call, taken off its list; with ``wait``,
        once every one is done (the scheduler may have run some: the database says which), oldest first.
        Without ``wait``: none (they run in the background). What a server's write route ends with."""
        return self.transport.finish_caused_jobs(wait)

    def has_code(self, digest: str) -> bool:
        """Whether the code tree ``digest`` (and every chunk under it) is stored."""
        return self.transport.has_code(digest)

    def store_code(self, directory: str | Path) -> str:
        """Store a code directory as a tree (nothing is written when it is stored already); return its digest."""
        return self.transport.store_code(directory)

    def create_pipeline(self, source: SpecSource, wait: bool | None = None, *, code: CodeUpload | None = None
                        ) -> list[PipelineInfo]:
        """Create pipelines from a spec (dict, PipelineSpec, or a JSON/YAML file) and run them on current inputs.

        ``code`` (the API server's use): code a remote client uploaded, stored already, and its description.
        """
        return self.transport.create_pipeline(source, wait, code=code)

    def update_pipeline(self, source: SpecSource, reprocess: bool = False, wait: bool | None = None, *,
                        code: CodeUpload | None = None) -> list[PipelineInfo]:
        return self.transport.update_pipeline(source, reprocess, wait, code=code)

    def edit_pipeline(self, name: str, spec: dict[str, Any], reprocess: bool = False, wait: bool | None = None
                      ) -> list[PipelineInfo]:
        """A new version of pipeline ``name`` with this spec and the code its current version runs
        (``pachctl edit pipeline``: the spec changes, the code stays)."""
        return self.transport.edit_pipeline(name, spec, reprocess, wait)

    def rerun_pipeline(self, name: str, reprocess: bool = False, wait: bool | None = None) -> PipelineInfo:
        return self.transport.rerun_pipeline(name, reprocess, wait)

    def run_cron(self, pipeline: str, name: str | None = None, wait: bool | None = None) -> list[Any]:
        """Commit a cron tick now (for every cron input of the pipeline, or the one named)."""
        return self.transport.run_cron(pipeline, name, wait)

    def tick_due_crons(self) -> list[Any]:
        """Commit the cron ticks whose schedule has come round, then run the jobs they trigger."""
        return self.transport.tick_due_crons()

    def holding_job_starts(self) -> AbstractContextManager[None]:
        """Start the jobs that the pipeline creates and updates inside the block ask for when it ends, not at once:
        the API gives a new pipeline's creator its output repo first, or a scheduler could take the first job
        before the creator may write it."""
        return self.transport.holding_job_starts()

    def pipeline_exists(self, name: str) -> bool:
        return self.transport.pipeline_exists(name)

    def inspect_pipeline(self, name: str) -> PipelineInfo:
        return self.transport.inspect_pipeline(name)

    def pipeline_versions(self, name: str) -> list[dict[str, object]]:
        return self.transport.pipeline_versions(name)

    def list_pipelines(self) -> list[PipelineInfo]:
        return self.transport.list_pipelines()

    def delete_pipeline(self, name: str, keep_repo: bool = False) -> None:
        self.transport.delete_pipeline(name, keep_repo)

    def stop_pipeline(self, name: str) -> PipelineInfo:
        return self.transport.stop_pipeline(name)

    def start_pipeline(self, name: str) -> PipelineInfo:
        return self.transport.start_pipeline(name)

    def list_jobs(self, pipeline: str | None = None, global_id: str | None = None, limit: int | None = None,
                  offset: int = 0) -> list[JobInfo]:
        """Newest first; ``offset`` skips that many, ``limit`` keeps at most that many (none or 0: all)."""
        return self.transport.list_jobs(pipeline, global_id, limit, offset)

    def inspect_job(self, job_id: str) -> JobInfo:
        return self.transport.inspect_job(job_id)

    def wait_job(self, job_id: str, timeout: float | None = None) -> JobInfo:
        """Wait for a job to end (running queued work here) and return it, failed or not."""
        return self.transport.wait_job(job_id, timeout)

    def stop_job(self, job_id: str) -> JobInfo:
        return self.transport.stop_job(job_id)

    def list_datums(self, job_id: str, limit: int | None = None, offset: int = 0, failed_first: bool = False
                    ) -> list[DatumInfo]:
        """By datum id (with ``failed_first``: the failed ones, and those with an error, first); ``offset`` skips
        that many, ``limit`` keeps at most that many (none or 0: all)."""
        return self.transport.list_datums(job_id, limit, offset, failed_first)

    def inspect_datum(self, job_id: str, datum_id: str) -> DatumInfo:
        return self.transport.inspect_datum(job_id, datum_id)

    def dry_run_datums(self, source: SpecSource) -> list[Datum]:
        """The datums a spec would produce on the current inputs (a trigger input: its trigger branch's, as the
        pipeline reads it); nothing is created."""
        return self.transport.dry_run_datums(source)

    def lineage(self, ref: str) -> dict[str, Any]:
        """Upstream provenance and downstream results of a commit (``repo@branch`` or ``repo@commit``).

        With a path (``predict@master:/1.csv``), also the datum that wrote the
        file and the exact input files it read.
        """
        return self.transport.lineage(ref)

    def logs(self, pipeline: str | None = None, job: str | None = None, datum: str | None = None,
             grep: str | None = None) -> list[tuple[str, str, str]]:
        """(job, datum, line) for every matching log line."""
        return self.transport.logs(pipeline, job, datum, grep)
