"""Services: the one core that the CLI, the SDK and the HTTP API share.

The data core (repos, branches, commits, files, triggers) is built when the
services open; pipelines, jobs, models, deployments and algorithms are built
the first time something asks for them, so that a command such as
``tusk repo list`` loads neither pydantic's pipeline spec nor numpy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from tusk.config import Settings
from tusk.errors import InvalidArgument
from tusk.storage.content import ContentStore
from tusk.storage.metadata import Database, DbChunkIndex, PipelineRow
from tusk.storage.objects import ObjectStore, open_object_store
from tusk.versioning.archive import ArchiveReport, Target, extract, restore
from tusk.versioning.branches import BranchService
from tusk.versioning.commits import CommitService
from tusk.versioning.context import Context
from tusk.versioning.files import FileService
from tusk.versioning.fsck import fsck
from tusk.versioning.gc import DEFAULT_GRACE, collect_garbage
from tusk.versioning.records import CommitInfo, FsckReport, GcReport
from tusk.versioning.repos import RepoService
from tusk.versioning.transactions import RequestKind, TransactionService
from tusk.versioning.trees import TreeStore
from tusk.versioning.triggers import TriggerService

if TYPE_CHECKING:
    from tusk.algorithms.registry import AlgorithmService
    from tusk.deployments.registry import DeploymentService
    from tusk.images.store import ImageStore
    from tusk.models.registry import ModelService
    from tusk.pipelines.cron import CronService
    from tusk.pipelines.jobs import JobService
    from tusk.pipelines.lifecycle import PipelineLifecycle
    from tusk.pipelines.registry import PipelineService
    from tusk.pipelines.runtimes import ConfiguredRuntime
    from tusk.pipelines.s3 import DatumGateway
    from tusk.pipelines.secrets import SecretService

__all__ = ["Services"]

T = TypeVar("T")


class _built(Generic[T]):
    """A service built on first use, once, under the services' lock (threads of a server race for it)."""

    def __init__(self, build: Callable[[Services], T]) -> None:
        self.build = build
        self.name = build.__name__

    @overload
    def __get__(self, obj: None, owner: Any) -> _built[T]: ...
    @overload
    def __get__(self, obj: Services, owner: Any) -> T: ...
    def __get__(self, obj: Services | None, owner: Any) -> T | _built[T]:
        if obj is None:
            return self
        with obj._lock:
            if self.name not in obj.__dict__:
                obj.__dict__[self.name] = self.build(obj)
            value: T = obj.__dict__[self.name]
            return value


class Services:
    def __init__(self, settings: Settings, ctx: Context) -> None:
        self._lock = threading.RLock()
        self.settings = settings
        self.ctx = ctx
        self.commits = CommitService(ctx)
        self.repos = RepoService(ctx)
        self.branches = BranchService(ctx, self.commits)
        self.triggers = TriggerService(ctx, self.branches)
        self.transactions = TransactionService(ctx, self.repos, self.commits, self.branches)
        self.transactions.kinds_factory = self._transaction_kinds
        self.files = FileService(ctx, self.commits, stat_cache=settings.home / "cache" / "stat.db")
        self.commits.listeners.append(self._on_commit)
        self._datum_gateways: Callable[[Services], DatumGateway] | None = None

    def _transaction_kinds(self) -> dict[str, RequestKind]:
        """The requests transactions batch beyond repos, commits and branches: pipeline create and update."""
        from tusk.pipelines.transacted import pipeline_kinds

        return pipeline_kinds(lambda: self.pipelines, lambda: self.jobs)

    def use_datum_gateways(self, factory: Callable[[Services], DatumGateway]) -> None:
        """Serve S3-enabled pipelines' datums (``input.pfs.s3``, ``s3_out``) with the endpoints ``factory`` makes.

        Set by the interfaces that run jobs (the CLI, ``tusk server``), which may import the S3 gateway
        (``tusk.s3gateway.datum_gateways``): these services, which the SDK imports too, may not. Without it
        such datums fail, saying so.
        """
        self._datum_gateways = factory
        if self.built("jobs"):
            self.jobs.worker.gateway_factory = lambda: factory(self)

    def _on_commit(self, commit: CommitInfo, moved: bool) -> None:
        self.models.on_commit(commit, moved)  # first: a model commit has its manifest before jobs read it
        self.triggers.on_commit(commit, moved)
        if self.built("jobs") or self._pipelines_running():
            self.jobs.on_commit(commit, moved)

    def built(self, name: str) -> bool:
        """Whether the service ``name`` (``jobs``, ``models``…) was built in this process: one never built has
        done nothing (caused no job, holds no state)."""
        return name in self.__dict__

    def _pipelines_running(self) -> bool:
        """Whether any pipeline runs (a commit can start a job): when none does, as for a plain ``put file``,
        the job service and its imports (~0.1 s of a CLI command's start) are not built to learn that."""
        from sqlalchemy import select

        with self.ctx.db.read() as s:
            return s.scalar(select(PipelineRow.id).where(PipelineRow.state == "running").limit(1)) is not None

    @classmethod
    def open(cls, settings: Settings, objects: ObjectStore | None = None) -> Services:
        if settings.dask_address:  # say so now, not when the first job of a write fails
            import importlib.util

            if importlib.util.find_spec("distributed") is None:
                raise InvalidArgument(f"TUSK_DASK_ADDRESS={settings.dask_address} runs datums on Dask, which is "
                                      "not installed: pip install 'tusk[distributed]'")
        db = Database(settings.database_url)
        db.migrate()
        if objects is None:
            objects = open_object_store(settings.objects_url, settings.s3_endpoint_url)
        ctx = Context(db=db, objects=objects, content=ContentStore(objects, DbChunkIndex(db)), trees=TreeStore(objects),
                      default_user=settings.user)
        return cls(settings, ctx)

    @_built
    def runtime(self) -> ConfiguredRuntime:
        from tusk.pipelines.runtimes import ConfiguredRuntime

        return ConfiguredRuntime(self.settings.runtime, self.settings.extra, self.settings.datum_limits)

    @property
    def runtime_note(self) -> str | None:
        """Why pipelines do not run sandboxed here, if they do not (probes on first use)."""
        return self.runtime.note

    @_built
    def pipelines(self) -> PipelineService:
        from tusk.pipelines.registry import PipelineService

        return PipelineService(self.ctx, self.repos, self.settings.image_fallback)

    @_built
    def lifecycle(self) -> PipelineLifecycle:
        """Creating, updating and rerunning pipelines (the version, then its job), and dry runs of specs."""
        from tusk.pipelines.lifecycle import PipelineLifecycle

        return PipelineLifecycle(self.pipelines, lambda: self.jobs, self.ctx, self.commits)

    @_built
    def images(self) -> ImageStore:
        """Imported container images (``tusk image import``): what ``transform.image`` runs in."""
        from tusk.images.store import ImageStore

        return ImageStore(self.ctx)

    @_built
    def jobs(self) -> JobService:
        from tusk.pipelines.jobs import JobService

        jobs = JobService(self.ctx, self.commits, self.pipelines, self.runtime, self.settings.home / "scratch")
        jobs.secrets = self.secrets
        jobs.egress_endpoint = self.settings.s3_endpoint_url
        if self._datum_gateways is not None:
            make = self._datum_gateways
            jobs.worker.gateway_factory = lambda: make(self)
        if self.settings.dask_address:
            from tusk.pipelines.executors import DaskExecutor

            jobs.executor = DaskExecutor(self.settings)
        return jobs

    @_built
    def secrets(self) -> SecretService:
        """Secrets for ``transform.secrets``, sealed with the key file in this Tusk home."""
        from tusk.pipelines.secrets import SecretService

        return SecretService(self.ctx, self.settings.home / "keys" / "secrets.key")

    @_built
    def cron(self) -> CronService:
        from tusk.pipelines.cron import CronService

        return CronService(self.ctx, self.commits, self.files, self.pipelines)

    @_built
    def models(self) -> ModelService:
        from tusk.models.registry import ModelService

        return ModelService(self.ctx, self.commits, self.branches)

    @_built
    def deployments(self) -> DeploymentService:
        from tusk.deployments.registry import DeploymentService

        return DeploymentService(self.ctx, self.models)

    @_built
    def algorithms(self) -> AlgorithmService:
        from tusk.algorithms.registry import AlgorithmService

        return AlgorithmService(self.ctx, self.commits, self.repos, self.files, self.models,
                                self.settings.home / "scratch", dict(self.settings.extra), self.settings.datum_limits)

    def fsck(self, verify_chunks: bool = True, repair: bool = False) -> FsckReport:
        return fsck(self.ctx, verify_chunks, repair)

    def gc(self, dry_run: bool = False, grace: float = DEFAULT_GRACE) -> GcReport:
        """Reclaim every unreferenced object older than ``grace`` seconds (``tusk.versioning.gc``)."""
        return collect_garbage(self.ctx, dry_run, grace)

    def extract(self, dest: Target) -> ArchiveReport:
        """Write the whole store to a stream, a file or an ``s3://`` URL (``tusk.versioning.archive``)."""
        return extract(self.ctx, dest, self.settings.s3_endpoint_url)

    def restore(self, src: Target) -> ArchiveReport:
        """Load an archive into this empty store, then fsck it."""
        return restore(self.ctx, src, self.settings.s3_endpoint_url)

    def close(self) -> None:
        if self.built("algorithms"):  # only what was built needs closing
            self.algorithms.close()
        if self.built("jobs"):
            self.jobs.executor.close()
        self.ctx.content.close()
        self.ctx.db.dispose()
