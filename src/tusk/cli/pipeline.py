from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from tusk.cli._state import emit, err, out, say, state, warn_plain
from tusk.errors import InvalidArgument

if TYPE_CHECKING:
    from tusk.pipelines.records import PipelineInfo

app = typer.Typer(help="Create, update, inspect, stop, start, rerun and delete pipelines.", no_args_is_help=True)

_COLUMNS = ["name", "version", "state", "input", "last job", "description"]


def _row(p: PipelineInfo) -> list[object]:
    return [p.name, p.version, p.state, ",".join(p.input_repos), p.last_job_state or "-", p.description]


def _report(infos: list[PipelineInfo]) -> None:
    if state.json:
        emit(infos, _COLUMNS, _row)
        return
    for p in infos:
        for note in p.notes:
            err.print(f"[yellow]warning:[/yellow] {escape(p.name)}: {escape(note)}")
        say(f"pipeline {p.name} v{p.version}: last job {p.last_job_state or 'queued'}")


@app.command("create")
def create(spec: Path = typer.Option(..., "--file", "-f", help="pipeline spec (JSON or YAML)"),
           no_wait: bool = typer.Option(False, "--no-wait", help="queue the first job instead of running it")) -> None:
    """Create pipelines from a spec file and process their current inputs."""
    _report(state.client.create_pipeline(spec, wait=not no_wait))


@app.command("update")
def update(spec: Path = typer.Option(..., "--file", "-f"),
           reprocess: bool = typer.Option(False, "--reprocess", help="process every datum again"),
           no_wait: bool = typer.Option(False, "--no-wait")) -> None:
    """Save a new version of a pipeline's spec and run it."""
    _report(state.client.update_pipeline(spec, reprocess, wait=not no_wait))


@app.command("rerun")
def rerun(name: str, reprocess: bool = typer.Option(False, "--reprocess"),
          no_wait: bool = typer.Option(False, "--no-wait")) -> None:
    """Run a pipeline again on its current inputs."""
    _report([state.client.rerun_pipeline(name, reprocess, wait=not no_wait)])


@app.command("run-cron")
def run_cron(name: str | None = typer.Argument(None),
             input_name: str | None = typer.Option(None, "--input", help="one cron input by name"),
             due: bool = typer.Option(False, "--due", help="tick every pipeline whose schedule has come round")
             ) -> None:
    """Commit a cron tick now, so the pipeline runs (--due: only ticks that are due, for every pipeline)."""
    if not due and name is None:
        raise InvalidArgument("name a pipeline, or pass --due to tick every pipeline that is due")
    ticks = state.client.tick_due_crons() if due or name is None else state.client.run_cron(name, input_name)
    if state.json:
        emit(ticks, ["repo", "id"])
    else:
        for t in ticks:
            say(f"tick {t.repo}@{t.id}")


@app.command("list")
def list_() -> None:
    """List pipelines."""
    emit(state.client.list_pipelines(), _COLUMNS, _row)


@app.command("inspect")
def inspect(name: str, versions: bool = typer.Option(False, "--versions", help="show every spec version")) -> None:
    """Show a pipeline and its spec."""
    if versions:
        emit(state.client.pipeline_versions(name), ["version", "created_by", "created_at"])
        return
    info = state.client.inspect_pipeline(name)
    if state.json:
        emit(info, _COLUMNS, _row)
        return
    import json

    out.print(f"[bold]Name[/bold]      {escape(info.name)}\n[bold]Version[/bold]   {info.version}\n"
              f"[bold]State[/bold]     {info.state}\n[bold]Last job[/bold]  {info.last_job or '-'}"
              f" ({info.last_job_state or '-'})")
    code = info.code or {}
    git = code.get("git") or {}
    out.print(f"[bold]Code[/bold]      tree {escape(code.get('tree') or '- (runs in ' + str(code.get('dir')) + ')')}"
              f"{', git ' + escape(str(git.get('commit'))) if git else ''}{' (dirty)' if git.get('dirty') else ''}",
              highlight=False)
    out.print(json.dumps(info.spec, indent=2), markup=False)


@app.command("delete")
def delete(name: str, keep_repo: bool = typer.Option(False, "--keep-repo", help="keep the output repo")) -> None:
    """Delete a pipeline (and its output repo unless --keep-repo)."""
    state.client.delete_pipeline(name, keep_repo)
    if not state.json:
        say(f"deleted pipeline {name}")


@app.command("stop")
def stop(name: str) -> None:
    """Stop a pipeline: new commits do not start jobs."""
    _report([state.client.stop_pipeline(name)])


@app.command("start")
def start(name: str) -> None:
    """Start a stopped pipeline."""
    _report([state.client.start_pipeline(name)])
    warn_plain("run `tusk pipeline rerun` to process commits that arrived while it was stopped")
