"""Services: the one core that the CLI, the SDK and the HTTP API share."""

from __future__ import annotations

from dataclasses import dataclass

from tusk.config import Settings
from tusk.models.registry import ModelService
from tusk.pipelines.cron import CronService
from tusk.pipelines.executors import DaskExecutor
from tusk.pipelines.jobs import JobService
from tusk.pipelines.registry import PipelineService
from tusk.pipelines.runtimes import ConfiguredRuntime
from tusk.serving.algorithms import AlgorithmService
from tusk.serving.deployments import DeploymentService
from tusk.storage.content import ContentStore
from tusk.storage.metadata import Database, DbChunkIndex
from tusk.storage.objects import ObjectStore, open_object_store
from tusk.versioning.branches import BranchService
from tusk.versioning.commits import CommitService
from tusk.versioning.context import Context
from tusk.versioning.files import FileService
from tusk.versioning.fsck import fsck
from tusk.versioning.records import FsckReport
from tusk.versioning.repos import RepoService
from tusk.versioning.trees import TreeStore
from tusk.versioning.triggers import TriggerService

__all__ = ["Services"]


@dataclass
class Services:
    settings: Settings
    ctx: Context
    repos: RepoService
    branches: BranchService
    commits: CommitService
    files: FileService
    pipelines: PipelineService
    jobs: JobService
    cron: CronService
    triggers: TriggerService
    models: ModelService
    deployments: DeploymentService
    algorithms: AlgorithmService
    runtime: ConfiguredRuntime

    @property
    def runtime_note(self) -> str | None:
        """Why pipelines do not run sandboxed here, if they do not (probes on first use)."""
        return self.runtime.note

    @classmethod
    def open(cls, settings: Settings, objects: ObjectStore | None = None) -> Services:
        db = Database(settings.database_url)
        db.migrate()
        if objects is None:
            objects = open_object_store(settings.objects_url, settings.s3_endpoint_url)
        ctx = Context(db=db, objects=objects, content=ContentStore(objects, DbChunkIndex(db)), trees=TreeStore(objects),
                      default_user=settings.user)
        commits = CommitService(ctx)
        repos = RepoService(ctx)
        pipelines = PipelineService(ctx, repos)
        runtime = ConfiguredRuntime(settings.runtime, settings.extra, settings.datum_limits)
        jobs = JobService(ctx, commits, pipelines, runtime, settings.home / "scratch")
        if settings.dask_address:
            jobs.executor = DaskExecutor(settings)
        branches = BranchService(ctx, commits)
        triggers = TriggerService(ctx, branches)
        models = ModelService(ctx, commits, branches)
        commits.listeners.append(models.on_commit)  # first: a model commit has its manifest before jobs read it
        commits.listeners.append(triggers.on_commit)
        commits.listeners.append(jobs.on_commit)
        files = FileService(ctx, commits)
        return cls(
            settings=settings,
            ctx=ctx,
            repos=repos,
            branches=branches,
            commits=commits,
            files=files,
            pipelines=pipelines,
            jobs=jobs,
            cron=CronService(ctx, commits, files, pipelines),
            triggers=triggers,
            models=models,
            deployments=DeploymentService(ctx, models),
            algorithms=AlgorithmService(ctx, commits, repos, files, models, settings.home / "scratch",
                                        dict(settings.extra), settings.datum_limits),
            runtime=runtime,
        )

    def fsck(self, verify_chunks: bool = True, repair: bool = False) -> FsckReport:
        return fsck(self.ctx, verify_chunks, repair)

    def close(self) -> None:
        self.algorithms.close()
        self.jobs.executor.close()
        self.ctx.content.close()
        self.ctx.db.dispose()
