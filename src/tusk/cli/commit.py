from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from tusk.cli._state import emit, out, say, state
from tusk.errors import CommitNotFound, RepoNotFound
from tusk.ids import is_commit_id, is_id_prefix
from tusk.units import human_size

if TYPE_CHECKING:
    from tusk.versioning.records import CommitInfo

app = typer.Typer(help="Start, finish, list, inspect, wait for, subscribe to, squash and delete commits.",
                  no_args_is_help=True)

_COLUMNS = ["repo", "branch", "commit", "parent", "state", "started", "size", "origin", "description"]


def _row(c: CommitInfo) -> list[object]:
    return [c.repo, c.branch, c.id, c.parent or "", c.state, c.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            human_size(c.size_bytes), c.origin, c.description]


def _print_commit(info: CommitInfo) -> None:
    """The commit as a table row with --json, else just its id (for `$(tusk commit start ...)`)."""
    if state.json:
        emit(info, _COLUMNS, _row)
    else:
        say(info.id)


@app.command("start")
def start(ref: str = typer.Argument(..., metavar="REPO@BRANCH"),
          message: str = typer.Option("", "--message", "-m", "--description")) -> None:
    """Open a commit on a branch; `put file` to the branch then writes into it."""
    _print_commit(state.client.start_commit(ref, message))


@app.command("finish")
def finish(ref: str = typer.Argument(..., metavar="REPO@BRANCH|REPO@COMMIT"),
           message: str | None = typer.Option(None, "--message", "-m", "--description")) -> None:
    """Finish an open commit: its changes become visible atomically."""
    _print_commit(state.client.finish_commit(ref, message))


@app.command("list")
def list_(ref: str = typer.Argument(..., metavar="REPO[@BRANCH]|GLOBAL_ID"),
          number: int | None = typer.Option(None, "--number", "-n")) -> None:
    """List commits, newest first; or every commit of a global id (one commit set), in every repo."""
    if "@" not in ref and is_id_prefix(ref):
        try:
            commits = state.client.inspect_commit_set(ref)
        except CommitNotFound:
            if is_commit_id(ref):
                raise
        else:  # (a repo whose name looks like an id is listed when no commit set has that id)
            emit(commits[:number] if number else commits, _COLUMNS, _row, title=f"commit set {commits[0].global_id}")
            return
    emit(state.client.list_commits(ref, number), _COLUMNS, _row)


@app.command("subscribe")
def subscribe(ref: str = typer.Argument(..., metavar="REPO@BRANCH"),
              new: bool = typer.Option(False, "--new", help="only commits that land from now on"),
              since: str | None = typer.Option(None, "--from", help="only commits after this commit"),
              raw: bool = typer.Option(False, "--raw", help="one JSON object a line"),
              poll: float = typer.Option(0.5, "--poll", help="seconds between looks"),
              timeout: float | None = typer.Option(None, "--timeout", help="stop after this many seconds")) -> None:
    """Print each commit of a branch as it lands (the ones already there first, unless --new or --from);
    Ctrl-C ends it."""
    import json

    state.quiet_interrupt = True  # Ctrl-C is how a subscription ends
    try:
        for c in state.client.subscribe_commits(ref, new, poll, timeout, since):
            if raw or state.json:
                say(json.dumps(c.to_dict(), default=str))
            else:
                say("  ".join(str(v) for v in _row(c)[:8]) + (f"  {c.description}" if c.description else ""))
            out.file.flush()
    except KeyboardInterrupt:
        return


@app.command("inspect")
def inspect(ref: str = typer.Argument(..., metavar="REPO@REF|GLOBAL_ID"),
            global_: bool = typer.Option(False, "--global",
                                         help="every commit of this commit's global id, in every repo")) -> None:
    """Show a commit, or every commit of a global id."""
    if global_ and "@" in ref:
        gid = state.client.inspect_commit(ref).global_id
        commits = state.client.inspect_commit_set(gid)
        emit(commits, _COLUMNS, _row, title=f"commit set {gid}")
        return
    missing: CommitNotFound | None = None
    if "@" not in ref and is_id_prefix(ref):
        try:
            commits = state.client.inspect_commit_set(ref)
            emit(commits, _COLUMNS, _row, title=f"commit set {commits[0].global_id}")
            return
        except CommitNotFound as exc:
            if is_commit_id(ref):
                raise
            missing = exc  # perhaps a repo whose name looks like an id: then its master head
    try:
        info = state.client.inspect_commit(ref)
    except RepoNotFound:
        if missing is not None:
            raise missing from None
        raise
    if state.json:
        emit(info, _COLUMNS, _row)
        return
    for key, value in info.to_dict().items():
        if key == "size_bytes":
            value = f"{human_size(int(value))} ({value} bytes)"
        out.print(f"[bold]{key.replace('_', ' ').title():<13}[/bold] "
                  f"{escape(str(value)) if value not in (None, []) else '-'}")


@app.command("wait")
def wait(ref: str = typer.Argument(..., metavar="REPO@REF"),
         timeout: float | None = typer.Option(None, "--timeout", help="seconds")) -> None:
    """Block until a commit is finished."""
    emit(state.client.wait_commit(ref, timeout), _COLUMNS, _row)


@app.command("squash")
def squash(ref: str = typer.Argument(..., metavar="REPO@COMMIT")) -> None:
    """Remove a commit from history, folding its changes into its children."""
    state.client.squash_commit(ref)
    if not state.json:
        say(f"squashed {ref}")


@app.command("delete")
def delete(ref: str = typer.Argument(..., metavar="REPO@COMMIT")) -> None:
    """Delete an open commit, or a branch head and its changes."""
    state.client.delete_commit(ref)
    if not state.json:
        say(f"deleted {ref}")
