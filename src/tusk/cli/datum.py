from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tusk.cli._state import emit, out, state
from tusk.errors import InvalidArgument

if TYPE_CHECKING:
    from tusk.pipelines.records import DatumInfo

app = typer.Typer(help="List and inspect datums (or dry-run a spec with -f).", no_args_is_help=True)

_COLUMNS = ["datum", "state", "inputs", "tries", "download", "process", "upload", "error"]


def _row(d: DatumInfo) -> list[object]:
    inputs = " ".join(f"{i['name']}:{i['path']}" for i in d.inputs)
    return [d.id, d.state, inputs, d.tries, f"{d.download_seconds:.2f}s/{d.download_bytes}B",
            f"{d.process_seconds:.2f}s", f"{d.upload_seconds:.2f}s/{d.upload_bytes}B", d.error or ""]


@app.command("list")
def list_(job: str | None = typer.Argument(None),
          spec: Path | None = typer.Option(None, "--file", "-f", help="dry run: the datums this spec would make")
          ) -> None:
    """List a job's datums, or the datums a spec would produce now (nothing is created)."""
    if spec is not None:
        datums = state.client.dry_run_datums(spec)
        rows = [{"datum": d.id, "inputs": " ".join(f"{i.name}:{i.path}" for i in d.inputs),
                 "commits": " ".join(f"{i.repo}@{i.commit[:8]}" for i in d.inputs)} for d in datums]
        emit(rows, ["datum", "inputs", "commits"])
        return
    if job is None:
        raise InvalidArgument("give a JOB (or PIPELINE, its latest job, or PIPELINE@JOB), or -f SPEC for a dry run")
    emit(state.client.list_datums(job_id(job)), _COLUMNS, _row)


def job_id(text: str) -> str:
    """A job as users name it: its id (or a prefix), ``PIPELINE@JOB`` as pachctl writes it, or ``PIPELINE``
    for that pipeline's latest job."""
    from tusk.errors import PipelineNotFound

    pipeline, sep, job = text.partition("@")
    if sep:
        if not pipeline or not job:
            raise InvalidArgument(f"{text}: write PIPELINE@JOB, e.g. map@3f2a9c")
        info = state.client.inspect_job(job)
        if info.pipeline != pipeline:
            raise InvalidArgument(f"job {job} belongs to pipeline {info.pipeline}, not {pipeline}")
        return info.id
    try:
        jobs = state.client.list_jobs(pipeline)
    except PipelineNotFound:
        return text  # not a pipeline: a job id
    if not jobs:
        raise InvalidArgument(f"pipeline {pipeline} has no jobs yet")
    return jobs[0].id


@app.command("inspect")
def inspect(job: str, datum: str) -> None:
    """Show one datum, with its log."""
    info = state.client.inspect_datum(job, datum)
    if state.json:
        emit(info, _COLUMNS, _row)
        return
    emit(info, _COLUMNS, _row)
    out.print(info.log, markup=False, highlight=False)
