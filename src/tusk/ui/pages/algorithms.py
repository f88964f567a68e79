"""Algorithms: the catalogue (each owner/name with its versions, their commits and code, what they may call, and
who may call them), one algorithm's versions and descriptors, and a form to call a version.

A call from the page goes through the serving app's own ``POST /v1/algo/owner/name/version`` handler, with this
session's caller in its scope: the same reader check, the same nested-call rights, the same input parsing and
the same error shape (a stack trace only for the algorithm's writers) as a call over HTTP."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tusk.algorithms.registry import AlgorithmVersion
from tusk.api._deps import Caller
from tusk.api.routes import algorithms, auth
from tusk.errors import AlgorithmNotFound, InvalidArgument, TuskError, Unauthenticated
from tusk.ui._web import error_page, form, page, page_of, render, ui_caller

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_ONE = "/ui/algorithms/{owner}/{name}"
MAX_INPUT = 64 << 10  # characters of input the call form takes (the API takes the serving body limit)


def _kind(v: AlgorithmVersion) -> str:
    return f"function {v.spec.entrypoint}" if v.spec.entrypoint else f"model {v.spec.model}"


def _callers(caller: Caller, resource: str) -> list[Any]:
    """The role bindings on the algorithm the caller may see (``GET /api/v1/auth/roles``'s own filter): every
    reader, writer and owner may call it."""
    return sorted(auth.list_roles(caller, resource), key=lambda b: b.user) if caller.state.auth else []


def _grouped(caller: Caller, versions: list[AlgorithmVersion]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for v in versions:  # by name, newest version first (the service's order)
        key = f"{v.owner}/{v.name}"
        if key not in out:
            out[key] = {"owner": v.owner, "name": v.name, "versions": [], "latest": v,
                        "callers": _callers(caller, algorithms.resource(key))}
        out[key]["versions"].append(v)
    return list(out.values())


@router.get("/ui/algorithms")
def algorithm_list(request: Request) -> Response:
    def build(caller: Caller) -> Response:
        rows = _grouped(caller, algorithms.list_algorithms(caller))
        return render(request, "algorithms/list.html", title="Algorithms", kind=_kind,
                      pager=page_of(request, lambda at, n: rows[at:at + n]))
    return page(request, build)


def _one(request: Request, caller: Caller, owner: str, name: str, **extra: Any) -> Response:
    found = algorithms.list_algorithms(caller, f"{owner}/{name}")
    if not found:  # the same words whether it exists or the caller may not read it
        raise AlgorithmNotFound(f"no algorithm {owner}/{name} is published, or {caller.user} is not a reader of it")
    res = algorithms.resource(f"{owner}/{name}")
    return render(request, "algorithms/algorithm.html", extra.pop("status", 200), title=f"Algorithm {owner}/{name}",
                  owner=owner, name=name, versions=found, kind=_kind, callers=_callers(caller, res),
                  resource=res, may_call=caller.can(res, "reader"), serves=_handlers(request) is not None,
                  browse=caller.can("algorithms", "reader"),
                  max_input=MAX_INPUT, **extra)


@router.get(_ONE)
def algorithm_page(request: Request, owner: str, name: str) -> Response:
    return page(request, lambda caller: _one(request, caller, owner, name))


def _handlers(request: Request) -> Any:
    """The serving app's handlers, mounted under this API app (None when the server does not serve)."""
    for route in request.app.routes:
        handlers = getattr(getattr(getattr(route, "app", None), "state", None), "handlers", None)
        if handlers is not None:
            return handlers
    return None


async def _call(request: Request, owner: str, name: str, version: str, body: bytes, content_type: str
                ) -> tuple[int, dict[str, Any]]:
    """``POST /v1/algo/owner/name/version`` through its own handler, as this session's caller."""
    handlers = _handlers(request)
    if handlers is None:
        raise InvalidArgument("this server does not serve algorithms (it runs without serving): call "
                              f"/v1/algo/{owner}/{name}/{version} on a server that does")
    path = f"/v1/algo/{owner}/{name}/{version}"
    scope = dict(request.scope, method="POST", path=path, raw_path=path.encode(), query_string=b"",
                 path_params={"owner": owner, "name": name, "version": version},
                 headers=[(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())])
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    response = await handlers.algo(Request(scope, receive))
    return response.status_code, json.loads(bytes(response.body))


@router.post(_ONE + "/call")
async def call(request: Request, owner: str, name: str) -> Response:
    """Call a version with the form's input (JSON, or text as a string); the page again, with the answer."""
    try:
        fields = await form(request)
        caller = ui_caller(request)
        if caller is None:
            raise Unauthenticated("sign in first: this server requires a token")
        version = fields.get("version", "latest").strip() or "latest"
        text, as_text = fields.get("input", ""), fields.get("kind") == "text"
        if len(text) > MAX_INPUT:
            raise InvalidArgument(f"the input is {len(text)} characters long; the form takes {MAX_INPUT} or fewer "
                                  f"(POST larger inputs to /v1/algo/{owner}/{name}/{version})")
        ctype = "text/plain; charset=utf-8" if as_text else "application/json"
        status, answer = await _call(request, owner, name, version, text.encode(), ctype)
        failure = answer.get("error") if status != 200 else None
        if failure and not algorithms.list_algorithms(caller, f"{owner}/{name}"):  # refused: no page to show
            return render(request, "error.html", status, title="Error", message=failure.get("message", ""),
                          kind=failure.get("error_type", "Error"))
        shown = {"result": answer.get("result"), "metadata": answer.get("metadata")} if status == 200 else None
        return _one(request, caller, owner, name, status=status, answer=shown, failure=failure,
                    asked={"version": version, "input": text, "kind": "text" if as_text else "json"})
    except TuskError as exc:
        return error_page(request, exc)
