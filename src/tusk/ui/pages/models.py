"""Models: model commits with their manifests, metrics side by side (a table and a chart per metric), stage
branches and every move of them (who, when, why); promote and rollback are form posts that ask for a reason
and call the API routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tusk.api._deps import Caller
from tusk.api.routes import branches, models
from tusk.errors import InvalidArgument
from tusk.ids import short_id
from tusk.models.registry import MOVE_NOTE_MAX
from tusk.ui._web import PAGE, act, page, page_of, render
from tusk.ui.charts import line_chart

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _flat(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[prefix + k] = v
    return out


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


@router.get("/ui/models")
def model_repos(request: Request) -> Response:
    def build(caller: Caller) -> Response:
        found: dict[str, dict[str, Any]] = {}
        for m in models.list_models(caller):
            entry = found.setdefault(m.repo, {"repo": m.repo, "versions": 0, "latest": m, "stages": set()})
            entry["versions"] += 1
            entry["stages"] |= set(m.aliases)
        rows = sorted(found.values(), key=lambda e: e["repo"])
        return render(request, "models/list.html", title="Models",
                      pager=page_of(request, lambda at, n: rows[at:at + n]))
    return page(request, build)


@router.get("/ui/models/{repo}")
def model_repo(request: Request, repo: str) -> Response:
    def build(caller: Caller) -> Response:
        found = page_of(request, lambda at, n: models.list_models(caller, repo, at + n)[at:], PAGE)
        versions = list(reversed(found.rows))  # oldest first, as the chart reads
        metrics = [_flat(m.metrics) for m in versions]
        keys = sorted({k for m in metrics for k in m})
        labels = [short_id(m.commit) for m in versions]
        charts = [line_chart(k, labels, [_number(m.get(k)) for m in metrics]) for k in keys
                  if any(_number(m.get(k)) is not None for m in metrics)]
        stages = [b for b in branches.list_branches(repo, caller)]
        history = {b.name: models.model_history(f"{repo}@{b.name}", caller)[:PAGE] for b in stages}
        selected = request.query_params.get("manifest")
        manifest = models.model_manifest(f"{repo}@{selected}", caller) if selected else None
        return render(request, "models/repo.html", title=f"Models in {repo}", repo=repo, pager=found,
                      versions=versions, metrics=metrics, keys=keys, charts=charts, stages=stages,
                      history=history, manifest=manifest, selected=selected, writer=caller.can(repo, "writer"),
                      note_max=MOVE_NOTE_MAX)
    return page(request, build)


def _reason(fields: dict[str, str], doing: str) -> str:
    """The reason the form asks for: required on the page (the API, SDK and CLI leave it optional). Its length
    is checked here, before the request body is built (whose own check would fail as a pydantic error, not a
    page); the service behind the route refuses control characters."""
    note = fields.get("note", "").strip()
    if not note:
        raise InvalidArgument(f"say why you are {doing}: the reason is kept in the branch's history")
    if len(note) > MOVE_NOTE_MAX:
        raise InvalidArgument(f"the reason is {len(note)} characters long; keep it to {MOVE_NOTE_MAX} "
                              "or fewer")
    return note


def _promote(caller: Caller, fields: dict[str, str]) -> None:
    ref, to = fields.get("ref", ""), fields.get("to", "").strip()
    if not to:
        raise InvalidArgument("name the branch to promote to (staging, production, ...)")
    note = _reason(fields, "promoting this model")
    models.promote_model(models.Promotion(ref=ref, to=to, note=note), caller)


def _rollback(caller: Caller, fields: dict[str, str]) -> None:
    note = _reason(fields, "rolling this branch back")
    models.rollback_model(models.Rollback(ref=fields.get("ref", ""), steps=1, note=note), caller)


@router.post("/ui/models/{repo}/promote")
async def promote(request: Request, repo: str) -> Response:
    return await act(request, f"/ui/models/{repo}", "promoted", _promote)


@router.post("/ui/models/{repo}/rollback")
async def rollback(request: Request, repo: str) -> Response:
    return await act(request, f"/ui/models/{repo}", "rolled back", _rollback)
