from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from tusk.cli._state import emit, err, out, say, state
from tusk.errors import InvalidArgument
from tusk.ids import short_id

if TYPE_CHECKING:
    from tusk.models.records import BranchMove, ModelInfo

app = typer.Typer(help="Model manifests, verified loading, promotion and rollback by branch.",
                  no_args_is_help=True)

_COLUMNS = ["repo", "commit", "branches", "models", "pipeline", "created", "metrics"]


def _row(m: ModelInfo) -> list[object]:
    metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.metrics.items())
    return [m.repo, m.commit, ",".join(m.aliases), "\n".join(m.models), m.pipeline or "-",
            m.created_at.strftime("%Y-%m-%d %H:%M:%S"), metrics]


def _move_row(m: BranchMove) -> list[object]:
    return [m.branch, m.from_commit or "-", m.to_commit or "-", m.reason, m.actor,
            m.moved_at.strftime("%Y-%m-%d %H:%M:%S"), m.note or ""]


# MOVE is the kind of move (the record's `reason`: commit, promote, rollback, ...); WHY is the note given with it
_MOVE_COLUMNS = ["branch", "from", "to", "move", "actor", "moved", "why"]
_REASON_HELP = "why, in one line (at most 1000 characters): kept in `tusk model history`"


def _print_move(move: BranchMove, verb: str) -> None:
    if state.json:
        emit(move, _MOVE_COLUMNS)
    else:
        say(f"{move.repo}@{move.branch}: {short_id(move.from_commit or '(none)')} → "
                  f"{short_id(move.to_commit or '')} ({verb} by {move.actor})"
                  + (f": {move.note}" if move.note else ""))


@app.command("list")
def list_(repo: str | None = typer.Argument(None, help="only this repo"),
          limit: int | None = typer.Option(None, "--limit", "-n")) -> None:
    """List model commits (those with a manifest), newest first, with the branches that point at them."""
    emit(state.client.list_models(repo, limit), _COLUMNS, _row)


@app.command("inspect")
def inspect(ref: str = typer.Argument(..., metavar="REPO@REF")) -> None:
    """Show a model commit's manifest: file hashes, training provenance, metrics, creation time."""
    manifest = state.client.model_manifest(ref)
    doc = manifest.to_dict() | {"digest": manifest.digest}
    if state.json:
        emit(doc, [])
        return
    out.print(f"[bold]{manifest.repo}@{manifest.commit}[/bold]  manifest {manifest.digest[:16]}")
    say(f"created {manifest.created_at} by {manifest.author} ({manifest.origin}), global id "
              f"{manifest.global_id}")
    for m in manifest.models:
        say(f"model {m.path} ({m.flavor}{', ' + m.entry_point if m.entry_point else ''})"
            + (f", explained by {m.explainer}" if m.explainer else ""))
    for f in manifest.files:
        say(f"  {f.role:9} {f.path}  {f.size} B  blake3 {f.blake3[:16]}…  sha256 {f.sha256[:16]}…",
                  highlight=False)
    training = manifest.training
    if training:
        say(f"trained by pipeline {training.get('pipeline')} v{training.get('pipeline_version')}, job "
                  f"{training.get('job')}")
        code = training.get("code") or {}
        git = code.get("git") or {}
        if git:
            say(f"  code: git {git.get('repo')} {git.get('ref') or ''} {git.get('commit')}"
                      f"{' (dirty)' if git.get('dirty') else ''}", highlight=False)
        if code.get("digest"):
            say(f"  code digest {code['digest'][:16]}… ({code.get('files')} files in {code.get('dir')})",
                      highlight=False)
        for i in training.get("inputs", []):
            say(f"  input {i.get('name')}: {i.get('repo')}@{i.get('commit')}")
        for src in training.get("sources", []):
            say(f"  source data {src['repo']}@{src['commit']}")
    for path, origin in manifest.upstream.items():
        say(f"  {path} is {origin['repo']}@{origin['commit']}:{origin['path']} (see its manifest)",
                  highlight=False)
    for path, metrics in manifest.metrics.items():
        say(f"metrics {path}: {json.dumps(metrics)}", highlight=False)
    for w in manifest.warnings:
        out.print(f"[yellow]warning[/yellow] {escape(w)}")


@app.command("verify")
def verify(ref: str = typer.Argument(..., metavar="REPO@REF")) -> None:
    """Re-read every file of a model commit and check it against the manifest (exit 3 if one differs)."""
    manifest = state.client.verify_model(ref)
    if state.json:
        emit({"repo": manifest.repo, "commit": manifest.commit, "ok": True, "files": len(manifest.files)}, [])
    else:
        out.print(f"[green]ok[/green] {manifest.repo}@{manifest.commit}: {len(manifest.files)} files match the "
                  "manifest")


@app.command("export")
def export(ref: str = typer.Argument(..., metavar="REPO@REF"),
           dest: Path = typer.Argument(..., help="directory to write the files and tusk-manifest.json to")) -> None:
    """Write a model's verified files and its manifest to a directory (tusk.models.load_dir reads it back)."""
    manifest = state.client.export_model(ref, dest)
    if state.json:
        emit({"repo": manifest.repo, "commit": manifest.commit, "dest": str(dest)}, [])
    else:
        say(f"exported {manifest.repo}@{manifest.commit} ({len(manifest.files)} files) to {dest}")


@app.command("predict")
def predict(ref: str = typer.Argument(..., metavar="REPO@REF[:/PATH]"),
            file: Path = typer.Option(..., "--file", "-f", help="rows to predict: CSV with a header, or JSON")) -> None:
    """Load a model (verified) and print its predictions for the rows of a file."""
    from tusk.errors import InputError
    from tusk.models.inputs import fit_columns, read_rows, to_jsonable

    if not file.is_file():
        raise InvalidArgument(f"no such file: {file}")
    model = state.client.load_model(ref)
    rows, unused = fit_columns(read_rows(file.read_bytes(), file.name), model.feature_names, model.n_features)
    if unused:
        err.print(f"[yellow]warning:[/yellow] ignored the column(s) the model does not use: "
                  f"{escape(', '.join(unused))}")
    try:
        result = to_jsonable(model.predict(rows))
    except (ValueError, TypeError, KeyError) as exc:  # the model's library refused the rows
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise InputError(f"the model cannot predict on the rows of {file}: {detail}") from None
    if state.json:
        emit({"model": f"{model.manifest.repo}@{model.commit}" if model.manifest else None,
              "path": model.entry.path, "predictions": result}, [])
    else:
        for value in result:
            say(value, highlight=False)


@app.command("promote")
def promote(ref: str = typer.Argument(..., metavar="REPO@COMMIT"),
            to: str = typer.Option(..., "--to", help="branch to point at it, e.g. staging or production"),
            reason: str | None = typer.Option(None, "--reason", help=_REASON_HELP)) -> None:
    """Point a branch of the model repo at a model commit; pipelines reading that branch re-run."""
    _print_move(state.client.promote_model(ref, to, note=reason), "promoted")


@app.command("rollback")
def rollback(repo: str = typer.Argument(..., metavar="REPO"),
             to: str = typer.Option(..., "--to", help="the branch to roll back, e.g. production"),
             steps: int = typer.Option(1, "--steps", help="undo this many promotions"),
             reason: str | None = typer.Option(None, "--reason", help=_REASON_HELP)) -> None:
    """Move a branch back to the model it had before its last promotion (a branch move: seconds, no new commit)."""
    _print_move(state.client.rollback_model(f"{repo}@{to}", steps, note=reason), "rolled back")


@app.command("history")
def history(ref: str = typer.Argument(..., metavar="REPO@BRANCH")) -> None:
    """Every move of a branch, newest first: commits, promotions, rollbacks, with who, when and why."""
    emit(state.client.model_history(ref), _MOVE_COLUMNS, _move_row)
