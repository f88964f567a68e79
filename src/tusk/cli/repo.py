from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from tusk.cli._state import emit, say, state
from tusk.units import human_size

if TYPE_CHECKING:
    from tusk.versioning.records import RepoInfo

app = typer.Typer(help="Create, list, inspect and delete repos.", no_args_is_help=True)

_COLUMNS = ["name", "created", "size", "branches", "description"]


def _row(r: RepoInfo) -> list[object]:
    return [r.name, r.created_at.strftime("%Y-%m-%d %H:%M:%S"), human_size(r.size_bytes), ",".join(r.branches),
            r.description]


@app.command("create")
def create(name: str, description: str = typer.Option("", "--description", "-d")) -> None:
    """Create a repo."""
    info = state.client.create_repo(name, description)
    if state.json:
        emit(info, _COLUMNS, _row)
    else:
        say(f"created repo {info.name}")


@app.command("list")
def list_() -> None:
    """List repos."""
    emit(state.client.list_repos(), _COLUMNS, _row)


@app.command("inspect")
def inspect(name: str) -> None:
    """Show a repo."""
    emit(state.client.inspect_repo(name), _COLUMNS, _row)


@app.command("delete")
def delete(name: str, force: bool = typer.Option(False, "--force", help="delete even with open commits")) -> None:
    """Delete a repo's metadata (its bytes are reclaimed by `tusk gc`)."""
    state.client.delete_repo(name, force)
    if not state.json:
        say(f"deleted repo {name}")
