from __future__ import annotations

import typer

from tusk.cli._state import emit, out, state

app = typer.Typer(help="Create, list and delete branches.", no_args_is_help=True)


@app.command("create")
def create(ref: str = typer.Argument(..., metavar="REPO@BRANCH"),
           head: str | None = typer.Option(None, "--head", help="commit or branch to point at")) -> None:
    """Create a branch (or move it with --head)."""
    info = state.client.create_branch(ref, head)
    if state.json:
        emit(info, ["repo", "name", "head"])
    else:
        out.print(f"branch {info.repo}@{info.name} → {info.head or '(no commits)'}")


@app.command("list")
def list_(repo: str) -> None:
    """List a repo's branches."""
    emit(state.client.list_branches(repo), ["name", "head", "created_at"])


@app.command("delete")
def delete(ref: str = typer.Argument(..., metavar="REPO@BRANCH")) -> None:
    """Delete a branch (its commits stay)."""
    state.client.delete_branch(ref)
    if not state.json:
        out.print(f"deleted branch {ref}")
