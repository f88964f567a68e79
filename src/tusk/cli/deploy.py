"""``tusk deploy``: deployments of model commits behind HTTP (served by ``tusk server``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tusk.cli._state import emit, say, state
from tusk.errors import InvalidArgument

if TYPE_CHECKING:
    from tusk.deployments.registry import DeploymentInfo, DeploymentRevision

app = typer.Typer(help="Deployments: predictors by model ref, traffic split, shadow, rollout and rollback.",
                  no_args_is_help=True)

_COLUMNS = ["name", "revision", "predictors", "shadow", "updated"]


def _doc(d: DeploymentInfo) -> dict[str, Any]:
    return {"name": d.name, "revision": d.revision, "spec": d.spec.model_dump(mode="json"),
            "predictors": [dataclasses.asdict(p) for p in d.predictors],
            "created_at": d.created_at.isoformat(), "updated_at": d.updated_at.isoformat()}


def _row(d: dict[str, Any]) -> list[object]:
    main = [p for p in d["predictors"] if not p["shadow"]]
    total = sum(p["weight"] for p in main) or 1
    parts = [f"{p['name']} {100 * p['weight'] / total:.0f}% {p['model']} → {(p['commit'] or p['error'] or '?')[:12]}"
             for p in main]
    shadow = [f"{p['name']} {p['model']} → {(p['commit'] or '?')[:12]}" for p in d["predictors"] if p["shadow"]]
    return [d["name"], d["revision"], "\n".join(parts), "\n".join(shadow) or "-", d["updated_at"][:19]]


def _show(info: DeploymentInfo, verb: str | None = None) -> None:
    doc = _doc(info)
    if state.json:
        emit(doc, [])
        return
    if verb:
        say(f"deployment {info.name}: {verb}, now at revision {info.revision}")
    emit([doc], _COLUMNS, _row)


@app.command("create")
def create(file: Path = typer.Option(..., "--file", "-f", help="deployment spec (JSON or YAML)")) -> None:
    """Create a deployment from a spec; every predictor's model ref must resolve to a model commit."""
    _show(state.client.create_deployment(file), "created")


@app.command("update")
def update(file: Path = typer.Option(..., "--file", "-f", help="deployment spec (JSON or YAML)")) -> None:
    """Replace a deployment's spec (a new revision; servers pick it up within a second)."""
    _show(state.client.update_deployment(file), "updated")


def _weights(pairs: list[str]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise InvalidArgument(f"--weight {pair!r}: use PREDICTOR=WEIGHT, e.g. canary=25")
    return weights


@app.command("rollout")
def rollout(name: str, weight: list[str] = typer.Option(..., "--weight", "-w",
                                                      help="PREDICTOR=WEIGHT (repeatable), e.g. canary=25")) -> None:
    """Shift traffic between predictors, e.g. a canary from 10 to 50: ``--weight canary=50 --weight stable=50``."""
    _show(state.client.rollout(name, _weights(weight)), "rolled out")


@app.command("rollback")
def rollback(name: str, revision: int | None = typer.Option(None, "--to-revision", help="default: the previous")
             ) -> None:
    """Go back to an earlier revision's spec. To roll back a model, move its branch: ``tusk model rollback``."""
    _show(state.client.rollback_deployment(name, revision), "rolled back")


@app.command("list")
def list_() -> None:
    """Deployments, their predictors, weights and the model commits they resolve to now."""
    emit([_doc(d) for d in state.client.list_deployments()], _COLUMNS, _row)


@app.command("inspect")
def inspect(name: str) -> None:
    """A deployment's spec and what its refs resolve to."""
    info = state.client.inspect_deployment(name)
    if state.json:
        emit(_doc(info), [])
        return
    _show(info)
    say(info.spec.model_dump_json(indent=2, exclude_defaults=True))


@app.command("history")
def history(name: str) -> None:
    """Every revision of a deployment, newest first: who changed what, and why."""
    def row(r: DeploymentRevision) -> list[object]:
        weights = ", ".join(f"{p.name}={p.weight:g}" for p in r.spec.predictors)
        return [r.revision, r.reason, r.actor, r.created_at.strftime("%Y-%m-%d %H:%M:%S"), weights]

    revisions = state.client.deployment_history(name)
    if state.json:
        emit([{"revision": r.revision, "reason": r.reason, "actor": r.actor, "created_at": r.created_at.isoformat(),
               "spec": r.spec.model_dump(mode="json")} for r in revisions], [])
        return
    emit(revisions, ["revision", "reason", "actor", "created", "weights"], row)


@app.command("delete")
def delete(name: str) -> None:
    """Delete a deployment (servers stop serving it within a second; its request-log repo stays)."""
    state.client.delete_deployment(name)
    say(f"deleted deployment {name}")
