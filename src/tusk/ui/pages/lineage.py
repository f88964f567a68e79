"""Lineage: a commit's inputs (upstream) and what was computed from it (downstream), as one graph; and a served
prediction (a request-log record) back through the model commit that answered and its training job to the raw
data."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from tusk.api._deps import Caller
from tusk.api.routes import commits, files, jobs
from tusk.errors import InvalidArgument, NotFound, PermissionDenied
from tusk.ids import short_id
from tusk.ui._web import page, render
from tusk.ui.dag import Graph, Node, render_svg

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _node(graph: Graph, n: dict[str, Any]) -> str:
    key = f"{n.get('repo')}@{n.get('commit')}"
    detail = str(n.get("state", ""))
    if n.get("pipeline"):
        detail += f" · job {short_id(str(n.get('job', '')))}"
    graph.add(Node(key, f"{n.get('repo')}@{short_id(str(n.get('commit', '')))}", detail,
                   f"/ui/repos/{n.get('repo')}/browse/{n.get('commit')}/", "commit", str(n.get("state", ""))))
    return key


def _walk(graph: Graph, n: dict[str, Any], key: str, up: bool) -> str:
    here = _node(graph, n)
    for child in n.get(key, []):
        there = _walk(graph, child, key, up)
        graph.link(there, here) if up else graph.link(here, there)
    return here


@router.get("/ui/lineage")
def lineage_page(request: Request) -> Response:
    ref = request.query_params.get("ref", "").strip()

    def build(caller: Caller) -> Response:
        if not ref:
            return render(request, "lineage/index.html", title="Lineage", ref="", svg=None, found=None)
        found = jobs.lineage(ref, caller)
        graph = Graph()
        _walk(graph, found["upstream"], "inputs", True)
        _walk(graph, found["downstream"], "outputs", False)
        return render(request, "lineage/index.html", title=f"Lineage of {ref}", ref=ref, found=found,
                      svg=render_svg(graph, f"Lineage of {ref}: inputs on the left, results on the right"))
    return page(request, build)


_MAX_LOG_FILE = 4 << 20  # a request-log file bigger than this is not read for one record
_RAW_FILES = 50  # files listed per raw data commit


def _split(ref: str) -> tuple[str, str, str]:
    """``repo@commit:/path`` as its three parts (a request-log file's ref, as the deployment page links it)."""
    repo, _, rest = ref.partition("@")
    commit, _, path = rest.partition(":")
    if not repo or not commit or not path.startswith("/"):
        raise InvalidArgument(f"{ref!r} is not a file ref; a prediction's lineage takes repo@commit:/path and a line")
    return repo, commit, path


def _record(ref: str, number: int, caller: Caller) -> dict[str, Any]:
    """Line ``number`` of a request-log file: one prediction (see ``tusk.serving.reqlog``)."""
    repo, commit, path = _split(ref)
    info = files.inspect_file(repo, commit, path, caller)
    if info.kind != "file":
        raise InvalidArgument(f"{ref} is a directory, not a request-log file")
    if info.size_bytes > _MAX_LOG_FILE:
        raise InvalidArgument(f"{ref} is {info.size_bytes} bytes, too big to read here; get it with tusk file get")
    lines = b"".join(caller.ops.iter_file(ref)).splitlines()
    if not 0 <= number < len(lines):
        raise InvalidArgument(f"{ref} has {len(lines)} records; there is no record {number}")
    try:
        rec = orjson.loads(lines[number])
    except orjson.JSONDecodeError:
        rec = None
    if not isinstance(rec, dict):
        raise InvalidArgument(f"record {number} of {ref} is not a request-log record (a JSON object)")
    return rec


def _cut(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _raw(node: dict[str, Any], out: dict[str, dict[str, Any]]) -> None:
    """The commits upstream of ``node`` that no job made: the data as it came in."""
    for n in node.get("inputs", []):
        if n.get("pipeline") is None and n.get("state") != "deleted":
            out.setdefault(f"{n.get('repo')}@{n.get('commit')}", n)
        _raw(n, out)


def _raw_files(caller: Caller, repo: str, commit: str) -> tuple[Any, list[Any]]:
    info = commits.inspect_commit(repo, commit, caller)  # (checks the caller may read the repo)
    found = [f for f in itertools.islice(caller.ops.walk_files(f"{repo}@{commit}:/"), _RAW_FILES + 1)
             if f.kind == "file"]
    return info, found


@router.get("/ui/lineage/prediction")
def prediction_page(request: Request) -> Response:
    """One served prediction (a request-log record) back to the raw data: the model commit that answered, the job
    and pipeline version that trained it, the files that job read and the raw commits they came from."""
    ref = request.query_params.get("ref", "").strip()
    try:
        number = int(request.query_params.get("line", "0"))
    except ValueError:
        number = -1

    def build(caller: Caller) -> Response:
        rec = _record(ref, number, caller)
        log_repo, log_commit, log_path = _split(ref)
        when = datetime.fromtimestamp(float(rec.get("ts") or 0), UTC)
        model = f"{rec.get('model_repo')}@{rec.get('model_commit')}" if rec.get("model_commit") else None
        context: dict[str, Any] = {"rec": rec, "when": when, "model": model, "ref": ref, "number": number,
                                   "log": {"repo": log_repo, "commit": log_commit, "path": log_path},
                                   "inputs": _cut(rec.get("inputs")) if not rec.get("truncated") else None,
                                   "answer": _cut(rec.get("error") or rec.get("outputs"))
                                   if not rec.get("truncated") else None,
                                   "svg": None, "trained": None, "job": None, "datums": [], "raw": [],
                                   "model_error": None}
        if model is not None:
            try:
                found = jobs.lineage(model, caller)
            except (PermissionDenied, NotFound) as exc:
                context["model_error"] = str(exc)
            else:
                graph = Graph()
                top = _walk(graph, found["upstream"], "inputs", True)
                graph.add(Node("prediction", "prediction", f"{rec.get('predictor', '')} · {when:%H:%M:%S}",
                               f"/ui/repos/{log_repo}/browse/{log_commit}{log_path}", "prediction"))
                graph.link(top, "prediction")
                context["svg"] = render_svg(graph, "Lineage of the prediction: the raw data on the left, the "
                                                   "model that answered, then the prediction")
                trained = found["commit"]
                context["trained"] = trained
                if trained.get("job"):
                    try:
                        context["job"] = jobs.inspect_job(str(trained["job"]), caller)
                        context["datums"] = jobs.list_datums(str(trained["job"]), caller)[:_RAW_FILES]
                    except NotFound:
                        pass
                raw: dict[str, dict[str, Any]] = {}
                _raw(found["upstream"], raw)
                for n in raw.values():
                    try:
                        info, listed = _raw_files(caller, str(n.get("repo")), str(n.get("commit")))
                    except (PermissionDenied, NotFound):
                        continue
                    context["raw"].append({"commit": info, "files": listed[:_RAW_FILES],
                                           "more": len(listed) > _RAW_FILES})
        return render(request, "lineage/prediction.html", title="Lineage of a prediction", **context)
    return page(request, build)
