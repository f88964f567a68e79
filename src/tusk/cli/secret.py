"""``tusk secret create|list|inspect|delete`` (pachctl: ``create secret -f``, ``list secret``, ...): a thin
layer over ``tusk.Client``. Nothing here prints a value."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tusk.cli._state import emit, say, state
from tusk.errors import InvalidArgument

if TYPE_CHECKING:
    from tusk.pipelines.secrets import SecretInfo

app = typer.Typer(help="Create, list, inspect and delete the secrets pipelines read (transform.secrets).",
                  no_args_is_help=True)

_COLUMNS = ["name", "keys", "created by", "created", "pipelines"]


def _row(s: SecretInfo) -> list[object]:
    return [s.name, ",".join(s.keys), s.created_by, s.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            ",".join(s.pipelines) or "-"]


def _pairs(option: str, given: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"{option} takes KEY=VALUE (got an item without '=')")
        pairs.append((key, value))
    return pairs


@app.command("create")
def create(name: str | None = typer.Argument(None, help="with --from-literal/--from-file: the secret's name"),
           manifest: Path | None = typer.Option(None, "--file", "-f",
                                                help="a Kubernetes Secret manifest (JSON or YAML), as "
                                                     "`kubectl create secret ... --dry-run=client -o json` writes"),
           literal: list[str] = typer.Option([], "--from-literal", help="KEY=VALUE (repeat for more keys)"),
           from_file: list[str] = typer.Option([], "--from-file", help="KEY=PATH: the file's bytes as the value")
           ) -> None:
    """Create a secret from a manifest file, or from literals and files."""
    values: dict[str, str | bytes] = dict(_pairs("--from-literal", literal))
    for key, path in _pairs("--from-file", from_file):
        try:
            values[key] = Path(path).read_bytes()
        except OSError as exc:
            raise InvalidArgument(f"--from-file {key}: cannot read {path}: {exc.strerror}") from None
    if manifest is not None:
        info = state.client.create_secret(manifest, name=name, literals=values or None)
    else:
        info = state.client.create_secret(name=name, literals=values)
    if state.json:
        emit(info, _COLUMNS, _row)
    else:
        say(f"created secret {info.name} (keys: {', '.join(info.keys) or 'none'})")


@app.command("list")
def list_() -> None:
    """List secrets: names, keys, creator and time (never values)."""
    emit(state.client.list_secrets(), _COLUMNS, _row)


@app.command("inspect")
def inspect(name: str) -> None:
    """Show a secret's keys, creator and the pipelines that use it (never its values)."""
    emit(state.client.inspect_secret(name), _COLUMNS, _row)


@app.command("delete")
def delete(name: str) -> None:
    """Delete a secret (refused while a pipeline uses it)."""
    state.client.delete_secret(name)
    if not state.json:
        say(f"deleted secret {name}")
