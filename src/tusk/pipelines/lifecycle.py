"""What creating, updating and rerunning pipelines is, over the registry and the job service together.

A pipeline's version is stored (``PipelineService``) and then its first job is started (``JobService``):
the SDK's in-process transport, and through it the REST API, call these, so every interface creates a
pipeline the same way. ``dry_run`` is the datums a spec would have now, by the job runner's own enumeration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from tusk.errors import BranchNotFound, CommitNotFound

if TYPE_CHECKING:
    from tusk.pipelines.codestore import PipelineCode
    from tusk.pipelines.datums import Datum, Match
    from tusk.pipelines.jobs import JobService
    from tusk.pipelines.registry import PipelineService
    from tusk.pipelines.spec import PfsInput, PipelineSpec
    from tusk.versioning.commits import CommitService
    from tusk.versioning.context import Context

__all__ = ["PipelineLifecycle"]


class PipelineLifecycle:
    def __init__(self, registry: PipelineService, jobs: Callable[[], JobService], ctx: Context,
                 commits: CommitService) -> None:
        """``jobs``: the job service, built when first needed (a dry run needs none)."""
        self.registry, self._jobs, self.ctx, self.commits = registry, jobs, ctx, commits

    @property
    def jobs(self) -> JobService:
        return self._jobs()

    def create(self, specs: Sequence[PipelineSpec], code: PipelineCode) -> None:
        """Create each pipeline (a spec with Pachyderm's ``"update": true`` updates one that exists) and start
        its first job over the current inputs."""
        for spec in specs:
            if spec.update and self.registry.exists(spec.name):
                self.registry.update(spec, code, spec.reprocess)
            else:
                self.registry.create(spec, code)
            self.jobs.start_job(spec.name)

    def update(self, specs: Sequence[PipelineSpec], code: PipelineCode, reprocess: bool) -> dict[str, list[str]]:
        """A new version of each pipeline, then its job; the notes of each update, by pipeline."""
        notes: dict[str, list[str]] = {}
        for spec in specs:
            notes[spec.name] = self.registry.update(spec, code, reprocess).notes
            self.jobs.start_job(spec.name)
        return notes

    def rerun(self, name: str, reprocess: bool) -> None:
        self.registry.rerun(name, reprocess)
        self.jobs.start_job(name)

    def dry_run(self, specs: Sequence[PipelineSpec]) -> list[Datum]:
        """The datums the specs would produce on the current inputs (a trigger input: its trigger branch's, as
        the pipeline reads it); nothing is created."""
        from tusk.pipelines.datums import Match, enumerate_datums
        from tusk.pipelines.input_triggers import resolve_input_triggers

        def globber(leaf: PfsInput) -> tuple[str, list[Match]]:
            try:
                commit_id, root = self.commits.tree_at(leaf.repo, leaf.commit or leaf.branch)
            except (BranchNotFound, CommitNotFound):  # an input with nothing in it yet has no datums
                return "", []
            return commit_id, [Match(p, e, g) for p, e, g in self.ctx.trees.glob_groups(root, leaf.glob)]

        resolved = [resolve_input_triggers(spec) for spec in specs]
        return [d for spec in resolved for d in enumerate_datums(spec.input.effective(spec.name), globber)]
