"""``tusk context``: named places to work (a server and its token, or an embedded store), as pachctl has them."""

from __future__ import annotations

import os

import typer

from tusk.cli._state import emit, say
from tusk.config import Settings
from tusk.contexts import Context, ContextFile

app = typer.Typer(help="Contexts: named servers (address, token) or stores (home); one is current.",
                  no_args_is_help=True)


def _file() -> ContextFile:
    path = Settings.from_env(use_context=False).config_path
    assert path is not None
    return ContextFile(path)


@app.command("create")
def create(name: str = typer.Argument(...),
           address: str | None = typer.Option(None, "--address", help="a tusk server, e.g. http://tusk:8080"),
           token: str | None = typer.Option(None, "--token", help="an API token for that server"),
           home: str | None = typer.Option(None, "--home", help="an embedded store's directory (TUSK_HOME)"),
           replace: bool = typer.Option(False, "--replace", help="overwrite a context of that name"),
           use: bool = typer.Option(False, "--use", help="make it the current context")) -> None:
    """Create a context (the first one created becomes current)."""
    f = _file()
    f.create(Context(name, address, token, os.path.abspath(os.path.expanduser(home)) if home else None), replace)
    if use:
        f.use(name)
    say(f"created context {name} in {f.path}")


@app.command("use")
def use(name: str = typer.Argument(...)) -> None:
    """Make a context the current one (TUSK_CONTEXT=NAME picks one for a single command)."""
    _file().use(name)
    say(f"using context {name}")


@app.command("list")
def list_() -> None:
    """Contexts, the current one marked (tokens masked)."""
    rows = [{"current": "*" if cur else "", **ctx.shown()} for ctx, cur in _file().list()]
    emit(rows, ["current", "name", "address", "home", "token"])


@app.command("delete")
def delete(name: str = typer.Argument(...)) -> None:
    """Delete a context."""
    _file().delete(name)
    say(f"deleted context {name}")
