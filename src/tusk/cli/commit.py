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

app = typer.Typer(help="Start, finish, list, inspect, wait for, squash and delete commits.", no_args_is_help=True)

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
def list_(ref: str = typer.Argument(..., metavar="REPO[@BRANCH]"),
          number: int | None = typer.Option(None, "--number", "-n")) -> None:
    """List commits, newest first."""
    emit(state.client.list_commits(ref, number), _COLUMNS, _row)


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
