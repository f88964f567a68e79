from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from tusk.cli._state import emit, out, state

if TYPE_CHECKING:
    from tusk.pipelines.records import JobInfo

app = typer.Typer(help="List, inspect, wait for and stop jobs.", no_args_is_help=True)

_COLUMNS = ["job", "pipeline", "state", "datums", "skipped", "failed", "global id", "started", "reason"]


def _row(j: JobInfo) -> list[object]:
    return [j.id, f"{j.pipeline} v{j.pipeline_version}", j.state, f"{j.datums_processed}/{j.datums_total}",
            j.datums_skipped, j.datums_failed, j.global_id,
            j.started_at.strftime("%H:%M:%S") if j.started_at else "-", j.reason or ""]


@app.command("list")
def list_(pipeline: str | None = typer.Option(None, "--pipeline", "-p"),
          global_id: str | None = typer.Option(None, "--global-id")) -> None:
    """List jobs, newest first."""
    emit(state.client.list_jobs(pipeline, global_id), _COLUMNS, _row)


@app.command("inspect")
def inspect(job: str) -> None:
    """Show a job: its inputs, datum counts and output commit."""
    info = state.client.inspect_job(job)
    if state.json:
        emit(info, _COLUMNS, _row)
        return
    for key, value in info.to_dict().items():
        out.print(f"[bold]{key.replace('_', ' ').title():<17}[/bold] "
                  f"{escape(str(value)) if value not in (None, []) else '-'}")


@app.command("wait")
def wait(job: str, timeout: float | None = typer.Option(None, "--timeout")) -> None:
    """Wait for a job to finish (running queued work in embedded mode)."""
    emit(state.client.wait_job(job, timeout), _COLUMNS, _row)


@app.command("stop")
def stop(job: str) -> None:
    """Stop a queued or running job."""
    emit(state.client.stop_job(job), _COLUMNS, _row)
