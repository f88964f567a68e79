"""``tusk algo``: versioned algorithms (functions or models) called by name and version."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tusk.cli._state import emit, say, state
from tusk.errors import InputError

if TYPE_CHECKING:
    from tusk.algorithms.registry import AlgorithmVersion

app = typer.Typer(help="Algorithms: publish owner/name/X.Y.Z, list, call.", no_args_is_help=True)

_COLUMNS = ["algorithm", "version", "kind", "calls", "cache", "commit", "published"]


def _row(v: AlgorithmVersion) -> list[object]:
    kind = f"function {v.spec.entrypoint}" if v.spec.entrypoint else f"model {v.spec.model}"
    return [f"{v.owner}/{v.name}", v.version, kind, ", ".join(v.spec.permissions.call) or "-",
            "yes" if v.spec.cache else "no", v.commit[:12], v.created_at.strftime("%Y-%m-%d %H:%M:%S")]


def _doc(v: AlgorithmVersion) -> dict[str, object]:
    return {"algorithm": f"{v.owner}/{v.name}", "version": v.version, "commit": v.commit,
            "spec": v.spec.model_dump(mode="json"), "actor": v.actor, "created_at": v.created_at.isoformat()}


@app.command("publish")
def publish(directory: Path, name: str = typer.Argument(..., metavar="OWNER/NAME"),
            version: str = typer.Option(..., "--version", "-v", help="X.Y.Z; published versions never change")
            ) -> None:
    """Publish a directory holding algorithm.yaml as OWNER/NAME/VERSION."""
    v = state.client.publish_algorithm(directory, name, version)
    if state.json:
        emit(_doc(v), [])
    else:
        say(f"published {v.full_name} (commit {v.commit[:12]} of repo algorithms)")


@app.command("list")
def list_(name: str | None = typer.Argument(None, metavar="[OWNER[/NAME]]")) -> None:
    """Published algorithm versions, newest version first."""
    versions = state.client.list_algorithms(name)
    if state.json:
        emit([_doc(v) for v in versions], [])
    else:
        emit(versions, _COLUMNS, _row)


@app.command("call")
def call(ref: str = typer.Argument(..., metavar="OWNER/NAME[/VERSION]"),
         data: str | None = typer.Argument(None, help="JSON input (default: read stdin)"),
         text: bool = typer.Option(False, "--text", help="pass the input as a string, not JSON")) -> None:
    """Call an algorithm: ``tusk algo call demo/clean/1.2 '["a", "b"]'``; prints result and metadata as JSON."""
    raw = sys.stdin.read() if data is None else data
    if text:
        value: object = raw
    else:
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise InputError(f"the input is not JSON ({exc}); pass --text for a plain string") from None
    response = state.client.algo(ref).pipe(value)
    sys.stdout.write(json.dumps({"result": response.result, "metadata": response.metadata}, indent=2,
                                default=str) + "\n")
