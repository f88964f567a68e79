"""Deployments: predictors with their weights and the model commits they serve, the shadow; live request rate,
latency percentiles and error rate per predictor and model commit, drift p-values per feature and outlier counts
(from this server's metrics, sampled as ``tusk.ui.traffic`` describes); the newest request-log records with
their answers; and a rollout form for writers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from tusk.api._deps import Caller
from tusk.api.routes import commits, deployments, files
from tusk.errors import InvalidArgument, NotFound
from tusk.ids import short_id
from tusk.ui._web import act, page, page_of, render
from tusk.ui.charts import line_chart
from tusk.ui.traffic import sample, traffic

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
REFRESH = 3  # seconds between refreshes of the live panel
RECENT = 10  # request-log records shown
_MAX_LOG_FILE = 4 << 20  # a log file bigger than this is linked, not read


@router.get("/ui/deployments")
def deployment_list(request: Request) -> Response:
    def build(caller: Caller) -> Response:
        found = page_of(request, lambda at, n: deployments.list_deployments(caller)[at:at + n])
        return render(request, "deployments/list.html", title="Deployments", pager=found)
    return page(request, build)


def _ago(seconds: float) -> str:
    return "now" if seconds < 0.5 else f"-{seconds:.0f}s"


def _live(name: str) -> dict[str, Any]:
    """The live panel: traffic per predictor and model commit, drift per feature, over the sampled window."""
    ring = sample(name)
    rows = traffic(ring)
    span = ring[-1].at - ring[0].at
    ago = [_ago(ring[-1].at - s.at) for s in ring[1:]]
    charts = []
    for t in rows:
        if any(v for v in t.rates):
            charts.append(line_chart(f"{t.predictor} {short_id(t.commit)} requests/s", ago, t.rates, "time"))
        if any(v is not None for v in t.p95s):
            charts.append(line_chart(f"{t.predictor} {short_id(t.commit)} p95 ms", ago, t.p95s, "time"))
    last = ring[-1]
    features = sorted(last.drift_p)
    when = [_ago(last.at - s.at) for s in ring]
    drift_charts = [line_chart(f"drift p-value of {f}", when, [s.drift_p.get(f) for s in ring], "time", (0.0, 1.0))
                    for f in features] if len(ring) > 1 else []
    return {"traffic": rows, "charts": charts, "span": span, "samples": len(ring), "drift": last.drift,
            "drift_p": [(f, last.drift_p[f]) for f in features], "drift_charts": drift_charts,
            "refresh": REFRESH}


def _cut(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _recent(log_repo: str, caller: Caller, limit: int = RECENT) -> list[dict[str, Any]]:
    """The newest ``limit`` records of the request log, newest first: each flush is one commit adding one
    JSON-lines file (``/<day>/<time>-<host>-<pid>-<seq>.jsonl``, see ``tusk.serving.reqlog``)."""
    out: list[dict[str, Any]] = []
    for c in commits.list_commits(log_repo, caller, None, limit):
        for change in files.diff_files(log_repo, c.id, caller):
            if change.change != "added" or not change.path.endswith(".jsonl"):
                continue
            ref = f"{log_repo}@{c.id}:{change.path}"
            body = b"".join(caller.ops.iter_file(ref)) if (change.new_size or 0) <= _MAX_LOG_FILE else b""
            lines = body.splitlines()
            for number, line in reversed(list(enumerate(lines))):  # (number: the prediction's page)
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(rec, dict):
                    continue
                model = f"{rec.get('model_repo')}@{rec.get('model_commit')}" if rec.get("model_commit") else None
                answer = rec.get("error") or rec.get("outputs")
                out.append({"ts": datetime.fromtimestamp(float(rec.get("ts") or 0), UTC),
                            "predictor": rec.get("predictor", ""), "shadow": bool(rec.get("shadow")),
                            "model": model, "commit": rec.get("model_commit"),
                            "branch": rec.get("model_branch") or "",
                            "latency_ms": rec.get("latency_ms"), "failed": "error" in rec,
                            "inputs": "(not logged: too big)" if rec.get("truncated") else _cut(rec.get("inputs")),
                            "answer": "(not logged: too big)" if rec.get("truncated") else _cut(answer),
                            "file": ref, "line": number})
                if len(out) >= limit:
                    return out
    return out


@router.get("/ui/deployments/{name}")
def deployment_page(request: Request, name: str) -> Response:
    def build(caller: Caller) -> Response:
        info = deployments.inspect_deployment(name, caller)
        history = deployments.deployment_history(name, caller)[:25]
        log_repo = info.spec.log_repo if info.spec.logging.enabled else None
        recent: list[dict[str, Any]] = []
        log_readable = log_repo is not None and caller.can(log_repo, "reader")
        if log_repo is not None and log_readable:
            try:
                recent = _recent(log_repo, caller)
            except NotFound:
                recent = []
        writer = caller.can(deployments.resource(name), "writer")
        return render(request, "deployments/deployment.html", title=f"Deployment {name}", d=info,
                      history=history, log_repo=log_repo, log_readable=log_readable, recent=recent, writer=writer,
                      **_live(name))
    return page(request, build)


@router.get("/ui/deployments/{name}/live")
def deployment_live(request: Request, name: str) -> Response:
    """The live panel alone: what the deployment page swaps in every few seconds."""
    def build(caller: Caller) -> Response:
        info = deployments.inspect_deployment(name, caller)
        return render(request, "deployments/_live.html", d=info, **_live(name))
    return page(request, build)


@router.post("/ui/deployments/{name}/rollout")
async def deployment_rollout(request: Request, name: str) -> Response:
    """New traffic weights from the form (``weight-<predictor>`` fields), through the API's rollout route."""
    def work(caller: Caller, fields: dict[str, str]) -> object:
        weights: dict[str, float] = {}
        for key, value in fields.items():
            if key.startswith("weight-"):
                try:
                    weights[key.removeprefix("weight-")] = float(value)
                except ValueError:
                    raise InvalidArgument(f"the weight of {key.removeprefix('weight-')} must be a number, "
                                          f"got {value!r}") from None
        if not weights:
            raise InvalidArgument("the rollout form sent no weights; reload the page and try again")
        return deployments.rollout(name, deployments.Weights(weights=weights), caller)
    return await act(request, f"/ui/deployments/{name}", "weights rolled out", work)
