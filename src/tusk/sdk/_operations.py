"""The operations interface: everything ``tusk.Client`` does, as one typed contract with two transports.

``LocalOperations`` (``tusk.sdk._local``) runs them in-process over the services; ``HttpOperations``
(``tusk.sdk._http``) sends them to a ``tusk server`` over its REST API. ``tusk.Client`` is one class over
either, chosen by configuration (``TUSK_ADDRESS``), as an ``httpx.Client`` is one class over a transport.
What is the same on both (which transaction is active, polling for new commits, writers that commit on
close, turning a failed job into an exception) is the client's, written once.

Both implementations subclass ``Operations``: a method one of them lacks is an error when it is built (and
to mypy), not a call that runs against services a remote client does not have.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from tusk.config import Settings
from tusk.errors import InvalidRef
from tusk.versioning.refs import FileRef, parse_file_ref

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

__all__ = ["Operations", "Progress", "Source", "file_ref", "writable"]

Progress = Callable[[int], None]
Source = bytes | str | Path | BinaryIO


def file_ref(text: str | FileRef) -> FileRef:
    return text if isinstance(text, FileRef) else parse_file_ref(text)


def writable(ref: FileRef) -> FileRef:
    if ref.ancestry:
        raise InvalidRef(f"cannot write to {ref}: ancestry refs are read-only; write to a branch")
    return ref


class Operations(ABC):
    """The operations of ``tusk.Client``, over one transport.

    Writes wait for the jobs they trigger when ``run_jobs`` is set; ``last_jobs`` holds the jobs the latest
    waiting call waited for, ``interrupted`` the commit sets whose jobs a Ctrl-C interrupted.
    """

    def __init__(self, settings: Settings, run_jobs: bool, job_progress: JobProgress | None) -> None:
        self.settings = settings
        self.run_jobs = run_jobs
        self.job_progress = job_progress
        self.last_jobs: list[JobInfo] = []
        self.interrupted: list[str] = []

    @property
    @abstractmethod
    def remote(self) -> bool:
        """Whether the operations go to a server."""

    @property
    @abstractmethod
    def runtime_note(self) -> str | None:
        """Why pipelines do not run sandboxed here, if they do not."""

    @property
    @abstractmethod
    def services(self) -> Services:
        """The in-process services (a remote transport has none: it says so)."""

    @abstractmethod
    def close(self) -> None:
        ...

    # -- repos, branches, commits, files and the store -------------------------------------------
    @abstractmethod
    def create_repo(self, name: str, description: str = "") -> RepoInfo:
        ...

    @abstractmethod
    def inspect_repo(self, name: str) -> RepoInfo:
        ...

    @abstractmethod
    def list_repos(self) -> list[RepoInfo]:
        ...

    @abstractmethod
    def delete_repo(self, name: str, force: bool = False) -> None:
        ...

    @abstractmethod
    def create_branch(self, ref: str, head: str | None = None, trigger: BranchTrigger | None = None) -> BranchInfo:
        ...

    @abstractmethod
    def list_branches(self, repo: str) -> list[BranchInfo]:
        ...

    @abstractmethod
    def delete_branch(self, ref: str) -> None:
        ...

    @abstractmethod
    def start_commit(self, ref: str, description: str = "") -> CommitInfo:
        ...

    @abstractmethod
    def finish_commit(self, ref: str, description: str | None = None) -> CommitInfo:
        ...

    @abstractmethod
    def inspect_commit(self, ref: str) -> CommitInfo:
        ...

    @abstractmethod
    def inspect_commit_set(self, global_id: str) -> list[CommitInfo]:
        ...

    @abstractmethod
    def list_commits(self, ref: str, limit: int | None = None, offset: int = 0) -> list[CommitInfo]:
        ...

    @abstractmethod
    def wait_commit(self, ref: str, timeout: float | None = None) -> CommitInfo:
        ...

    @abstractmethod
    def squash_commit(self, ref: str) -> None:
        ...

    @abstractmethod
    def delete_commit(self, ref: str) -> None:
        ...

    @abstractmethod
    def modify(self, ref: str, description: str | None = None, progress: Progress | None = None
               ) -> Loader:
        ...

    @abstractmethod
    def put_file(self, dest: str | FileRef, source: Source, *, append: bool = False, recursive: bool = False,
                 description: str | None = None, progress: Progress | None = None) -> CommitInfo | None:
        ...

    @abstractmethod
    def open_file(self, ref: str) -> BinaryIO:
        """A file to read as it streams (verified chunk by chunk)."""

    @abstractmethod
    def get_file(self, ref: str, start: int = 0, end: int | None = None) -> bytes:
        ...

    @abstractmethod
    def iter_file(self, ref: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        ...

    @abstractmethod
    def download(self, ref: str, dest: str | Path, progress: Progress | None = None) -> int:
        ...

    @abstractmethod
    def inspect_file(self, ref: str) -> FileInfo:
        ...

    @abstractmethod
    def list_files(self, ref: str, limit: int | None = None, offset: int = 0) -> list[FileInfo]:
        ...

    @abstractmethod
    def walk_files(self, ref: str) -> Iterator[FileInfo]:
        ...

    @abstractmethod
    def glob_files(self, ref: str) -> list[FileInfo]:
        ...

    @abstractmethod
    def diff_files(self, new: str, old: str | None = None, limit: int | None = None, offset: int = 0
                   ) -> list[DiffEntry]:
        ...

    @abstractmethod
    def delete_file(self, ref: str, description: str | None = None) -> CommitInfo | None:
        ...

    @abstractmethod
    def copy_file(self, src: str, dest: str, description: str | None = None) -> CommitInfo | None:
        ...

    @abstractmethod
    def fsck(self, verify_chunks: bool = True, repair: bool = False) -> FsckReport:
        ...

    @abstractmethod
    def gc(self, dry_run: bool = False, grace: float | None = None) -> GcReport:
        ...

    @abstractmethod
    def extract(self, dest: str | Path | BinaryIO) -> ArchiveReport:
        ...

    @abstractmethod
    def restore(self, src: str | Path | BinaryIO) -> ArchiveReport:
        ...

    # -- secrets ---------------------------------------------------------------------------------
    @abstractmethod
    def create_secret(self, manifest: SecretSource | None = None, *, name: str | None = None,
                      literals: Mapping[str, str | bytes] | None = None) -> SecretInfo:
        ...

    @abstractmethod
    def list_secrets(self) -> list[SecretInfo]:
        ...

    @abstractmethod
    def inspect_secret(self, name: str) -> SecretInfo:
        ...

    @abstractmethod
    def delete_secret(self, name: str) -> None:
        ...

    # -- images ----------------------------------------------------------------------------------
    @abstractmethod
    def import_image(self, path: str | Path, tag: str | None = None) -> list[ImageInfo]:
        ...

    @abstractmethod
    def list_images(self) -> list[ImageInfo]:
        ...

    @abstractmethod
    def inspect_image(self, ref: str) -> ImageInfo:
        ...

    @abstractmethod
    def delete_image(self, ref: str, force: bool = False) -> list[str]:
        ...

    # -- transactions (the client keeps which one is active; these name it) ----------------------
    @abstractmethod
    def start_transaction(self) -> TransactionInfo:
        ...

    @abstractmethod
    def finish_transaction(self, txn_id: str) -> TransactionInfo:
        """Run the transaction's requests together, then the jobs they trigger."""

    @abstractmethod
    def delete_transaction(self, txn_id: str) -> TransactionInfo:
        ...

    @abstractmethod
    def inspect_transaction(self, txn_id: str) -> TransactionInfo:
        ...

    @abstractmethod
    def pipeline_requests(self, name: str, call: dict[str, Any]) -> list[dict[str, Any]]:
        """The transaction requests a ``create_pipeline``/``update_pipeline`` call (its bound arguments) is:
        one per spec of the source, each with its code stored now."""

    @abstractmethod
    def add_transaction_request(self, txn_id: str, request: dict[str, Any]) -> tuple[TransactionInfo, Preview]:
        ...

    @abstractmethod
    def list_transactions(self) -> list[TransactionInfo]:
        ...

    # -- auth ------------------------------------------------------------------------------------
    @abstractmethod
    def whoami(self) -> dict[str, Any]:
        ...

    @abstractmethod
    def create_token(self, user: str | None = None, description: str = "", ttl_seconds: float | None = None
                     ) -> tuple[TokenInfo, str]:
        ...

    @abstractmethod
    def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        ...

    @abstractmethod
    def revoke_token(self, token_id: str) -> TokenInfo:
        ...

    @abstractmethod
    def set_role(self, resource: str, user: str, role: str | None) -> RoleBinding | None:
        ...

    @abstractmethod
    def list_roles(self, resource: str | None = None, user: str | None = None) -> list[RoleBinding]:
        ...

    @abstractmethod
    def activate_auth(self, admin: str) -> tuple[TokenInfo, str]:
        ...

    # -- deployments and algorithms --------------------------------------------------------------
    @abstractmethod
    def create_deployment(self, spec: DeploymentSpec | dict[str, Any] | str | Path) -> DeploymentInfo:
        ...

    @abstractmethod
    def update_deployment(self, spec: DeploymentSpec | dict[str, Any] | str | Path) -> DeploymentInfo:
        ...

    @abstractmethod
    def rollout(self, name: str, weights: dict[str, float]) -> DeploymentInfo:
        ...

    @abstractmethod
    def rollback_deployment(self, name: str, revision: int | None = None) -> DeploymentInfo:
        ...

    @abstractmethod
    def inspect_deployment(self, name: str) -> DeploymentInfo:
        ...

    @abstractmethod
    def list_deployments(self) -> list[DeploymentInfo]:
        ...

    @abstractmethod
    def deployment_history(self, name: str) -> list[DeploymentRevision]:
        ...

    @abstractmethod
    def delete_deployment(self, name: str) -> None:
        ...

    @abstractmethod
    def publish_algorithm(self, directory: str | Path, name: str, version: str) -> AlgorithmVersion:
        ...

    @abstractmethod
    def list_algorithms(self, name: str | None = None) -> list[AlgorithmVersion]:
        ...

    @abstractmethod
    def algo(self, ref: str) -> AlgorithmHandle:
        ...

    # -- models ----------------------------------------------------------------------------------
    @abstractmethod
    def list_models(self, repo: str | None = None, limit: int | None = None) -> list[ModelInfo]:
        ...

    @abstractmethod
    def model_manifest(self, ref: str) -> Manifest:
        ...

    @abstractmethod
    def load_model(self, ref: str) -> LoadedModel:
        ...

    @abstractmethod
    def verify_model(self, ref: str) -> Manifest:
        ...

    @abstractmethod
    def export_model(self, ref: str, dest: str | Path) -> Manifest:
        ...

    @abstractmethod
    def promote_model(self, ref: str, to: str, note: str | None = None) -> BranchMove:
        ...

    @abstractmethod
    def rollback_model(self, ref: str, steps: int = 1, note: str | None = None) -> BranchMove:
        ...

    @abstractmethod
    def model_history(self, ref: str) -> list[BranchMove]:
        ...

    # -- pipelines, jobs, datums, logs and lineage -----------------------------------------------
    @abstractmethod
    def run_pending_jobs(self, progress: JobProgress | None = None, *, wait_for_held: bool = False
                         ) -> list[JobInfo]:
        ...

    @abstractmethod
    def finish_caused_jobs(self, wait: bool) -> list[JobInfo]:
        ...

    @abstractmethod
    def has_code(self, digest: str) -> bool:
        ...

    @abstractmethod
    def store_code(self, directory: str | Path) -> str:
        ...

    @abstractmethod
    def create_pipeline(self, source: SpecSource, wait: bool | None = None, *, code: CodeUpload | None = None
                        ) -> list[PipelineInfo]:
        ...

    @abstractmethod
    def update_pipeline(self, source: SpecSource, reprocess: bool = False, wait: bool | None = None, *,
                        code: CodeUpload | None = None) -> list[PipelineInfo]:
        ...

    @abstractmethod
    def edit_pipeline(self, name: str, spec: dict[str, Any], reprocess: bool = False, wait: bool | None = None
                      ) -> list[PipelineInfo]:
        ...

    @abstractmethod
    def rerun_pipeline(self, name: str, reprocess: bool = False, wait: bool | None = None) -> PipelineInfo:
        ...

    @abstractmethod
    def run_cron(self, pipeline: str, name: str | None = None, wait: bool | None = None) -> list[Any]:
        ...

    @abstractmethod
    def tick_due_crons(self) -> list[Any]:
        ...

    @abstractmethod
    def holding_job_starts(self) -> AbstractContextManager[None]:
        ...

    @abstractmethod
    def pipeline_exists(self, name: str) -> bool:
        ...

    @abstractmethod
    def inspect_pipeline(self, name: str) -> PipelineInfo:
        ...

    @abstractmethod
    def pipeline_versions(self, name: str) -> list[dict[str, object]]:
        ...

    @abstractmethod
    def list_pipelines(self) -> list[PipelineInfo]:
        ...

    @abstractmethod
    def delete_pipeline(self, name: str, keep_repo: bool = False) -> None:
        ...

    @abstractmethod
    def stop_pipeline(self, name: str) -> PipelineInfo:
        ...

    @abstractmethod
    def start_pipeline(self, name: str) -> PipelineInfo:
        ...

    @abstractmethod
    def list_jobs(self, pipeline: str | None = None, global_id: str | None = None, limit: int | None = None,
                  offset: int = 0) -> list[JobInfo]:
        ...

    @abstractmethod
    def inspect_job(self, job_id: str) -> JobInfo:
        ...

    @abstractmethod
    def wait_job(self, job_id: str, timeout: float | None = None) -> JobInfo:
        ...

    @abstractmethod
    def stop_job(self, job_id: str) -> JobInfo:
        ...

    @abstractmethod
    def list_datums(self, job_id: str, limit: int | None = None, offset: int = 0, failed_first: bool = False
                    ) -> list[DatumInfo]:
        ...

    @abstractmethod
    def inspect_datum(self, job_id: str, datum_id: str) -> DatumInfo:
        ...

    @abstractmethod
    def dry_run_datums(self, source: SpecSource) -> list[Datum]:
        ...

    @abstractmethod
    def lineage(self, ref: str) -> dict[str, Any]:
        ...

    @abstractmethod
    def logs(self, pipeline: str | None = None, job: str | None = None, datum: str | None = None,
             grep: str | None = None) -> list[tuple[str, str, str]]:
        ...
