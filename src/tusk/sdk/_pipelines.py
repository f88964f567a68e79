"""The pipeline half of the in-process operations (``LocalOperations``): pipelines, jobs, datums, logs, lineage."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from tusk.errors import InvalidArgument
from tusk.ids import is_id_prefix
from tusk.sdk._operations import Operations

if TYPE_CHECKING:  # the pipeline spec (pydantic) and the datum engine load when a pipeline command needs them
    from tusk.pipelines.codestore import PipelineCode
    from tusk.pipelines.datums import Datum
    from tusk.pipelines.records import DatumInfo, JobInfo, PipelineInfo
    from tusk.pipelines.spec import PipelineSpec

__all__ = ["FAILED_STATES", "CodeUpload", "PipelineMethods", "SpecSource", "describe_failures", "same_name"]

JobProgress = Callable[[str, int, int, int], None]  # (pipeline, datums done, total, failed)
SpecSource = Union["PipelineSpec", dict[str, Any], str, Path]
CodeUpload = Union["PipelineCode"]  # code a remote client uploaded: stored already (the API server's use)
FAILED_STATES = frozenset({"failure", "unrunnable", "killed"})  # how a job that did not succeed ends
LOG_TAIL = 10  # lines of a failed datum's log that a job failure shows


def _specs(source: SpecSource) -> tuple[list[PipelineSpec], Path]:
    from tusk.pipelines.spec import PipelineSpec, load_spec, parse_spec

    if isinstance(source, PipelineSpec):
        return [source], Path.cwd()
    if isinstance(source, dict):
        return [parse_spec(source)], Path.cwd()
    path = Path(source)
    if not path.is_file():
        raise InvalidArgument(f"no such spec file: {path}")
    return load_spec(path), path.resolve().parent


def same_name(name: str, spec: dict[str, Any]) -> None:
    from tusk.pipelines.spec import parse_spec

    edited = parse_spec(spec).name
    if edited != name:
        raise InvalidArgument(f"the edited spec names pipeline {edited!r}, not {name!r}: editing cannot rename a "
                              f"pipeline; create {edited!r} with `tusk create pipeline -f`")


def _with_notes(info: PipelineInfo, spec: PipelineSpec, extra: list[str] | None = None) -> PipelineInfo:
    from tusk.pipelines.images import image_note
    from tusk.pipelines.long_running import notes_for
    from tusk.pipelines.support import spec_notes

    notes = [n for n in (image_note((info.code or {}).get("image")),) if n] + spec_notes(spec) + (extra or []) \
        + notes_for(spec.long_running)
    return replace(info, notes=notes)


def describe_failures(failed: list[JobInfo], datums: Callable[[str], list[DatumInfo]]) -> str:
    """What went wrong in each failed job: pipeline, job, the first failed datum and the tail of its log
    (the user program's own error), and where to read the rest."""
    lines = [f"{len(failed)} job(s) this command waited for did not succeed (the write itself landed):"]
    verbs = {"failure": "failed", "unrunnable": "is unrunnable", "killed": "was killed"}
    for job in failed:
        lines.append(f"pipeline {job.pipeline}: job {job.id} {verbs.get(job.state, job.state)}: "
                     f"{job.reason or 'no reason recorded'}")
        if job.state != "failure" or not job.datums_failed:
            continue
        bad = [d for d in datums(job.id) if d.state == "failed"]
        if not bad:
            continue
        first = next((d for d in bad if d.id in (job.reason or "")), bad[0])
        named = first.id in (job.reason or "")
        which = f"datum {first.id}" if named else \
            f"datum {first.id} ({', '.join(str(i.get('path')) for i in first.inputs)}: {first.error})"
        tail = [line for line in first.log.splitlines() if line.strip()][-LOG_TAIL:]
        lines.append(f"  the last lines of the log of {which}:" if tail else f"  {which} logged nothing")
        lines += [f"    {line}" for line in tail]
        lines.append(f"  the whole log: tusk logs --job {job.id} --datum {first.id}")
    return "\n".join(lines)


class PipelineMethods(Operations):

    def run_pending_jobs(self, progress: JobProgress | None = None, *, wait_for_held: bool = False
                         ) -> list[JobInfo]:
        """Run every queued job now, in DAG order (and take over those whose runner's lease lapsed).

        ``wait_for_held``: also wait for the jobs other runners hold, until no job is active, as a server's
        ``POST /api/v1/jobs/run-pending`` (what a remote client calls) does.
        """
        if wait_for_held:
            return self.services.jobs.drain(progress or self.job_progress)
        return self.services.jobs.run_pending(progress or self.job_progress)

    def finish_caused_jobs(self, wait: bool) -> list[JobInfo]:
        """The jobs this client's writes triggered since the last call, taken off its list; with ``wait``,
        once every one is done (the scheduler may have run some: the database says which), oldest first.
        Without ``wait``: none (they run in the background). What a server's write route ends with."""
        jobs = self.services.jobs
        caused = jobs.take_caused()
        if not wait:
            return []
        jobs.drain(global_ids=caused)
        return [j for gid in sorted(caused) for j in reversed(jobs.list(global_id=gid))]

    def has_code(self, digest: str) -> bool:
        """Whether the code tree ``digest`` (and every chunk under it) is stored."""
        return self.services.pipelines.code.has(digest)

    def store_code(self, directory: str | Path) -> str:
        """Store a code directory as a tree (nothing is written when it is stored already); return its digest."""
        return self.services.pipelines.code.store(Path(directory)).digest

    def _run_caused(self) -> list[JobInfo]:
        """Run the jobs this client's writes triggered (their whole DAG), not other people's queued work:
        a write never waits for, or fails because of, a pipeline it did not trigger."""
        if not self.services.built("jobs"):  # no job service here, so this client's writes caused no job
            self.last_jobs = []
            return []
        jobs = self.services.jobs
        caused = jobs.take_caused()
        self.last_jobs = []
        try:
            self.last_jobs = jobs.run_pending(self.job_progress, global_ids=caused)
        except KeyboardInterrupt:  # the job runner released its claim: the next run takes the job at once
            self.interrupted = sorted(caused)
            raise
        return self.last_jobs

    def _after_write(self) -> None:
        if self.run_jobs:
            self._run_caused()

    def create_pipeline(self, source: SpecSource, wait: bool | None = None, *, code: CodeUpload | None = None
                        ) -> list[PipelineInfo]:
        """Create pipelines from a spec (dict, PipelineSpec, or a JSON/YAML file) and run them on current inputs.

        ``code`` (the API server's use): code a remote client uploaded, stored already, and its description.
        """
        specs, code_dir = _specs(source)
        code = code or self.services.pipelines.store_code(code_dir, implicit=not isinstance(source, str | Path))
        self.services.lifecycle.create(specs, code)
        if self.run_jobs if wait is None else wait:
            self._run_caused()
        return [_with_notes(self.services.pipelines.inspect(s.name), s) for s in specs]

    def update_pipeline(self, source: SpecSource, reprocess: bool = False, wait: bool | None = None, *,
                        code: CodeUpload | None = None) -> list[PipelineInfo]:
        specs, code_dir = _specs(source)
        code = code or self.services.pipelines.store_code(code_dir, implicit=not isinstance(source, str | Path))
        notes = self.services.lifecycle.update(specs, code, reprocess)
        if self.run_jobs if wait is None else wait:
            self._run_caused()
        return [_with_notes(self.services.pipelines.inspect(s.name), s, notes[s.name]) for s in specs]

    def edit_pipeline(self, name: str, spec: dict[str, Any], reprocess: bool = False, wait: bool | None = None
                      ) -> list[PipelineInfo]:
        """A new version of pipeline ``name`` with this spec and the code its current version runs
        (``pachctl edit pipeline``: the spec changes, the code stays)."""
        same_name(name, spec)
        return self.update_pipeline(spec, reprocess, wait, code=self.services.pipelines.current_code(name))

    def rerun_pipeline(self, name: str, reprocess: bool = False, wait: bool | None = None) -> PipelineInfo:
        self.services.lifecycle.rerun(name, reprocess)
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

    def holding_job_starts(self) -> AbstractContextManager[None]:
        """Start the jobs that the pipeline creates and updates inside the block ask for when it ends, not at once:
        the API gives a new pipeline's creator its output repo first, or a scheduler could take the first job
        before the creator may write it."""
        return self.services.jobs.starts_deferred()

    def pipeline_exists(self, name: str) -> bool:
        return self.services.pipelines.exists(name)

    def inspect_pipeline(self, name: str) -> PipelineInfo:
        info = self.services.pipelines.inspect(name)
        if "spout" in info.spec or "service" in info.spec:  # its process, as recorded on this host
            from tusk.pipelines.long_running import read_status

            info = replace(info, process=read_status(self.services.settings.home, name))
        return info

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

    def list_jobs(self, pipeline: str | None = None, global_id: str | None = None, limit: int | None = None,
                  offset: int = 0) -> list[JobInfo]:
        """Newest first; ``offset`` skips that many, ``limit`` keeps at most that many (none or 0: all)."""
        return self.services.jobs.list(pipeline, global_id, limit, offset)

    def inspect_job(self, job_id: str) -> JobInfo:
        return self.services.jobs.inspect(job_id)

    def wait_job(self, job_id: str, timeout: float | None = None) -> JobInfo:
        """Wait for a job to end (running queued work here) and return it, failed or not."""
        self.last_jobs = []
        try:
            info = self.services.jobs.wait(job_id, timeout)
        except KeyboardInterrupt:
            self.interrupted = [self.services.jobs.inspect(job_id).global_id]
            raise
        self.last_jobs = [info]
        return info

    def stop_job(self, job_id: str) -> JobInfo:
        return self.services.jobs.stop(job_id)

    def list_datums(self, job_id: str, limit: int | None = None, offset: int = 0, failed_first: bool = False
                    ) -> list[DatumInfo]:
        """By datum id (with ``failed_first``: the failed ones, and those with an error, first); ``offset`` skips
        that many, ``limit`` keeps at most that many (none or 0: all)."""
        return self.services.jobs.datums(job_id, limit, offset, failed_first)

    def inspect_datum(self, job_id: str, datum_id: str) -> DatumInfo:
        return self.services.jobs.datum(job_id, datum_id)

    def dry_run_datums(self, source: SpecSource) -> list[Datum]:
        """The datums a spec would produce on the current inputs (a trigger input: its trigger branch's, as the
        pipeline reads it); nothing is created."""
        return self.services.lifecycle.dry_run(_specs(source)[0])

    def lineage(self, ref: str) -> dict[str, Any]:
        """Upstream provenance and downstream results of a commit (``repo@branch`` or ``repo@commit``).

        With a path (``predict@master:/1.csv``), also the datum that wrote the
        file and the exact input files it read.
        """
        from tusk.pipelines.lineage import lineage
        from tusk.versioning.refs import parse_file_ref

        fref = parse_file_ref(ref)
        return lineage(self.services.ctx, fref.repo, fref.ref, fref.ancestry,
                       fref.path if fref.has_path else None)

    def logs(self, pipeline: str | None = None, job: str | None = None, datum: str | None = None,
             grep: str | None = None) -> list[tuple[str, str, str]]:
        """(job, datum, line) for every matching log line."""
        jobs = [self.inspect_job(job)] if job else self.list_jobs(pipeline)
        if datum and job:  # the datum of that job (a short id is looked up among the job's datums only)
            datum = self.services.jobs.expand_datum_id(datum, jobs[0].id)
        out = []
        for j in jobs:
            if pipeline and j.pipeline != pipeline:
                continue
            for d in self.list_datums(j.id):
                if datum and not (d.id == datum or (is_id_prefix(datum) and d.id.startswith(datum))):
                    continue  # (without a job, a short datum id filters: every datum that starts with it)
                for line in d.log.splitlines():
                    if grep is None or grep in line:
                        out.append((j.id, d.id, line))
        if pipeline and not job and not datum:  # a spout's or service's process log (tusk.pipelines.long_running)
            from tusk.pipelines.long_running import read_log, read_status

            kind = (read_status(self.services.settings.home, pipeline) or {}).get("kind") or "-"
            out += [(str(kind), "-", line) for line in read_log(self.services.settings.home, pipeline)
                    if grep is None or grep in line]
        return out
