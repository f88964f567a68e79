"""The pipeline half of tusk.Client: pipelines, jobs, datums, logs, lineage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from tusk.errors import BranchNotFound, CommitNotFound, InvalidArgument
from tusk.pipelines.datums import Datum, Match, enumerate_datums
from tusk.pipelines.records import DatumInfo, JobInfo, PipelineInfo
from tusk.pipelines.runtimes import image_note
from tusk.pipelines.spec import PfsInput, PipelineSpec, load_spec, parse_spec
from tusk.services import Services

__all__ = ["CodeUpload", "PipelineMethods", "SpecSource"]

JobProgress = Callable[[str, int, int], None]
SpecSource = PipelineSpec | dict[str, Any] | str | Path
CodeUpload = tuple[Path, dict[str, Any]]  # (where the uploaded code now is, describe_code of the original)


def _specs(source: SpecSource) -> tuple[list[PipelineSpec], Path]:
    if isinstance(source, PipelineSpec):
        return [source], Path.cwd()
    if isinstance(source, dict):
        return [parse_spec(source)], Path.cwd()
    path = Path(source)
    if not path.is_file():
        raise InvalidArgument(f"no such spec file: {path}")
    return load_spec(path), path.resolve().parent


def _with_notes(info: PipelineInfo, spec: PipelineSpec, extra: list[str] | None = None) -> PipelineInfo:
    notes = [n for n in (image_note(spec.transform.image),) if n] + (extra or [])
    if spec.ignored:
        notes.append("ignored Kubernetes-only fields: " + ", ".join(sorted(spec.ignored)))
    return replace(info, notes=notes)


class PipelineMethods:
    services: Services
    run_jobs: bool
    job_progress: JobProgress | None

    def run_pending_jobs(self, progress: JobProgress | None = None) -> list[JobInfo]:
        """Run every queued job now, in DAG order (embedded mode)."""
        return self.services.jobs.run_pending(progress or self.job_progress)

    def _run_caused(self) -> list[JobInfo]:
        """Run the jobs this client's writes triggered (their whole DAG), not other people's queued work:
        a write never waits for, or fails because of, a pipeline it did not trigger."""
        jobs = self.services.jobs
        return jobs.run_pending(self.job_progress, global_ids=jobs.take_caused())

    def _after_write(self) -> None:
        if self.run_jobs:
            self._run_caused()

    def create_pipeline(self, source: SpecSource, wait: bool | None = None, *, code: CodeUpload | None = None
                        ) -> list[PipelineInfo]:
        """Create pipelines from a spec (dict, PipelineSpec, or a JSON/YAML file) and run them on current inputs.

        ``code`` (the API server's use): the code directory a remote client uploaded, and its description.
        """
        specs, code_dir = _specs(source)
        code_dir, info = code if code is not None else (code_dir, None)
        for spec in specs:
            self.services.pipelines.create(spec, code_dir, info)
            self.services.jobs.start_job(spec.name)
        if self.run_jobs if wait is None else wait:
            self._run_caused()
        return [_with_notes(self.services.pipelines.inspect(s.name), s) for s in specs]

    def update_pipeline(self, source: SpecSource, reprocess: bool = False, wait: bool | None = None, *,
                        code: CodeUpload | None = None) -> list[PipelineInfo]:
        specs, code_dir = _specs(source)
        code_dir, info = code if code is not None else (code_dir, None)
        notes = {}
        for spec in specs:
            notes[spec.name] = self.services.pipelines.update(spec, code_dir, reprocess, info).notes
            self.services.jobs.start_job(spec.name)
        if self.run_jobs if wait is None else wait:
            self._run_caused()
        return [_with_notes(self.services.pipelines.inspect(s.name), s, notes[s.name]) for s in specs]

    def rerun_pipeline(self, name: str, reprocess: bool = False, wait: bool | None = None) -> PipelineInfo:
        self.services.pipelines.rerun(name, reprocess)
        self.services.jobs.start_job(name)
        if self.run_jobs if wait is None else wait:
            self._run_caused()
        return self.services.pipelines.inspect(name)

    def run_cron(self, pipeline: str, name: str | None = None, wait: bool | None = None) -> list[Any]:
        """Commit a cron tick now (for every cron input of the pipeline, or the one named)."""
        ticks = self.services.cron.tick(pipeline, name)
        if self.run_jobs if wait is None else wait:
            self._run_caused()
        return ticks

    def tick_due_crons(self) -> list[Any]:
        """Commit the cron ticks whose schedule has come round, then run the jobs they trigger."""
        ticks = self.services.cron.tick_due()
        if ticks and self.run_jobs:
            self._run_caused()
        return ticks

    def inspect_pipeline(self, name: str) -> PipelineInfo:
        return self.services.pipelines.inspect(name)

    def pipeline_versions(self, name: str) -> list[dict[str, object]]:
        return self.services.pipelines.versions(name)

    def list_pipelines(self) -> list[PipelineInfo]:
        return self.services.pipelines.list()

    def delete_pipeline(self, name: str, keep_repo: bool = False) -> None:
        self.services.pipelines.delete(name, keep_repo)

    def stop_pipeline(self, name: str) -> PipelineInfo:
        return self.services.pipelines.set_state(name, "stopped")

    def start_pipeline(self, name: str) -> PipelineInfo:
        return self.services.pipelines.set_state(name, "running")

    def list_jobs(self, pipeline: str | None = None, global_id: str | None = None) -> list[JobInfo]:
        return self.services.jobs.list(pipeline, global_id)

    def inspect_job(self, job_id: str) -> JobInfo:
        return self.services.jobs.inspect(job_id)

    def wait_job(self, job_id: str, timeout: float | None = None) -> JobInfo:
        return self.services.jobs.wait(job_id, timeout)

    def stop_job(self, job_id: str) -> JobInfo:
        return self.services.jobs.stop(job_id)

    def list_datums(self, job_id: str) -> list[DatumInfo]:
        return self.services.jobs.datums(job_id)

    def inspect_datum(self, job_id: str, datum_id: str) -> DatumInfo:
        return self.services.jobs.datum(job_id, datum_id)

    def dry_run_datums(self, source: SpecSource) -> list[Datum]:
        """The datums a spec would produce on the current inputs; nothing is created."""
        specs, _ = _specs(source)
        ctx, commits = self.services.ctx, self.services.commits

        def globber(leaf: PfsInput) -> tuple[str, list[Match]]:
            with ctx.db.read() as s:
                repo = ctx.repo_row(s, leaf.repo)
                try:
                    row = commits.resolve_row(s, repo, leaf.commit or leaf.branch)
                except (BranchNotFound, CommitNotFound):  # an input with nothing in it yet has no datums
                    return "", []
                root = commits.tree_of(s, row)
            return row.id, [Match(p, e, g) for p, e, g in ctx.trees.glob_groups(root, leaf.glob)]

        return [d for spec in specs for d in enumerate_datums(spec.input.effective(spec.name), globber)]

    def lineage(self, ref: str) -> dict[str, Any]:
        """Upstream provenance and downstream results of a commit (``repo@branch`` or ``repo@commit``).

        With a path (``predict@master:/1.csv``), also the datum that wrote the
        file and the exact input files it read.
        """
        from tusk.pipelines.lineage import lineage
        from tusk.versioning.refs import parse_file_ref

        fref = parse_file_ref(ref)
        return lineage(self.services.ctx, self.services.commits, fref.repo, fref.ref, fref.ancestry,
                       fref.path if fref.has_path else None)

    def logs(self, pipeline: str | None = None, job: str | None = None, datum: str | None = None,
             grep: str | None = None) -> list[tuple[str, str, str]]:
        """(job, datum, line) for every matching log line."""
        jobs = [self.inspect_job(job)] if job else self.list_jobs(pipeline)
        out = []
        for j in jobs:
            if pipeline and j.pipeline != pipeline:
                continue
            for d in self.list_datums(j.id):
                if datum and d.id != datum:
                    continue
                for line in d.log.splitlines():
                    if grep is None or grep in line:
                        out.append((j.id, d.id, line))
        return out
