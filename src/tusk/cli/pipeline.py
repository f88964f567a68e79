from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from tusk.cli._state import emit, err, out, say, state, warn_plain
from tusk.errors import InvalidArgument

if TYPE_CHECKING:
    from tusk.pipelines.records import PipelineInfo

app = typer.Typer(help="Create, update, edit, inspect, draw, stop, start, rerun and delete pipelines.",
                  no_args_is_help=True)

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


@app.command("run-spouts")
def run_spouts(poll: float = typer.Option(1.0, "--poll", help="seconds between looks at the pipelines")) -> None:
    """Run the spout and service pipelines in the foreground, and the jobs their commits trigger (Ctrl-C ends
    them). `tusk server` runs them too; with one running on this store, its scheduler has them already."""
    import time

    client = state.client
    if client.remote:
        raise InvalidArgument("the server at TUSK_ADDRESS runs spouts and services itself (its scheduler): "
                              "`tusk pipeline inspect NAME` shows each one's process, `tusk logs -p NAME` its log")
    from tusk.root.scheduler import Scheduler

    scheduler = Scheduler(client.services, poll=poll, cron=False)
    scheduler.start()
    say("running spouts and services (Ctrl-C stops them)")
    try:
        while True:
            time.sleep(3600)
    finally:
        scheduler.stop()


@app.command("list")
def list_(spec: bool = typer.Option(False, "--spec", "-s", help="print the specs (JSON), not a table"),
          history: str | None = typer.Option(None, "--history", metavar="N|all",
                                             help="also the N versions before the current one (or all)")
          ) -> None:
    """List pipelines (--spec: their specs, which `create pipeline -f` reads back; --history: older versions)."""
    import json

    pipelines = state.client.list_pipelines()
    if history is None:
        if spec:
            for p in pipelines:
                say(json.dumps(p.spec, indent=2))
            return
        emit(pipelines, _COLUMNS, _row)
        return
    back = _history(history)
    rows: list[dict[str, object]] = []
    for p in pipelines:
        versions = state.client.pipeline_versions(p.name)
        for v in reversed(versions if back is None else versions[-(back + 1):]):
            rows.append({"name": p.name, **v})
    if spec:
        for r in rows:
            say(json.dumps(r["spec"], indent=2))
        return
    emit(rows, ["name", "version", "created_by", "created_at"])


def _history(text: str) -> int | None:
    """``--history N`` (versions before the current one), ``all`` or ``-1`` (every version): None for all."""
    if text in ("all", "-1"):
        return None
    if not text.isdigit():
        raise InvalidArgument(f"--history takes a number of versions or 'all', not {text!r}")
    return int(text)


@app.command("draw")
def draw() -> None:
    """Draw the DAG of repos and pipelines, input to output, as text."""
    pipelines = state.client.list_pipelines()
    if not pipelines:
        say("no pipelines: create one with `tusk create pipeline -f SPEC`")
        return
    for line in draw_dag({p.name: sorted(set(p.input_repos)) for p in pipelines}):
        say(line)


def draw_dag(inputs: dict[str, list[str]]) -> list[str]:
    """Layers of boxes (source repos on top, each pipeline one layer below its deepest input), and under
    each layer the edges that leave it: ``images ──▶ edges``."""
    depth: dict[str, int] = {}

    def layer(node: str, path: tuple[str, ...] = ()) -> int:
        if node not in depth:
            if node in path:  # a cycle cannot be created, but never loop on one
                return 0
            ups = inputs.get(node, [])
            depth[node] = 1 + max((layer(u, (*path, node)) for u in ups), default=-1) if node in inputs else 0
        return depth[node]

    for name in inputs:
        layer(name)
    lines: list[str] = []
    for d in range(max(depth.values()) + 1):
        nodes = sorted(n for n, k in depth.items() if k == d)
        labels = [f" {n} ({'pipeline' if n in inputs else 'repo'}) " for n in nodes]
        lines.append("  ".join("+" + "-" * len(lb) + "+" for lb in labels))
        lines.append("  ".join("|" + lb + "|" for lb in labels))
        lines.append("  ".join("+" + "-" * len(lb) + "+" for lb in labels))
        edges = [f"   {n} ──▶ {p}" for n in nodes for p in sorted(inputs) if n in inputs[p]]
        lines += edges
    return lines


@app.command("edit")
def edit(name: str, reprocess: bool = typer.Option(False, "--reprocess", help="process every datum again"),
         editor: str | None = typer.Option(None, "--editor", help="the editor to run (default: $EDITOR, else vi)"),
         no_wait: bool = typer.Option(False, "--no-wait")) -> None:
    """Edit a pipeline's spec in $EDITOR, then update the pipeline with it (its code stays as it is)."""
    import json
    import os
    import shlex
    import subprocess
    import tempfile

    from tusk.documents import load_documents

    before = json.dumps(state.client.inspect_pipeline(name).spec, indent=2) + "\n"
    command = shlex.split(editor or os.environ.get("EDITOR") or "vi")
    with tempfile.TemporaryDirectory(prefix="tusk-edit-") as tmp:
        path = Path(tmp) / f"{name}.json"
        path.write_text(before)
        try:
            ran = subprocess.run([*command, str(path)], check=False)
        except OSError as exc:
            raise InvalidArgument(f"cannot run the editor {command[0]!r}: {exc.strerror}; set $EDITOR") from None
        if ran.returncode != 0:
            raise InvalidArgument(f"the editor exited with status {ran.returncode}; the pipeline is unchanged")
        after = path.read_text()
        if after.strip() == before.strip():
            raise InvalidArgument(f"the spec of {name} is unchanged: nothing to update")
        docs = load_documents(path, "pipeline spec")
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise InvalidArgument(f"the edited spec must be one JSON object (the pipeline {name}); it is unchanged")
    if docs[0] == json.loads(before):
        raise InvalidArgument(f"the spec of {name} is unchanged: nothing to update")
    _report(state.client.edit_pipeline(name, docs[0], reprocess, wait=not no_wait))


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
    if info.process:
        p = info.process
        out.print(f"[bold]Process[/bold]   {p.get('kind')} {p.get('state')}, pid {p.get('pid') or '-'}, "
                  f"{p.get('restarts', 0)} restart(s)"
                  + (f", last error: {escape(str(p['last_error']))}" if p.get("last_error") else "")
                  + (f", {p['commits']} commit(s)" if p.get("commits") else "")
                  + (f", port 127.0.0.1:{p['port']}" if p.get("port") else ""), highlight=False)
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
