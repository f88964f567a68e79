"""``create_app(services)``: the REST API and the dashboard, as one ASGI app (``tusk.root.app`` adds the serving
app and the scheduler to make ``tusk server``'s).

``/api/v1/...`` is the management API (FastAPI; OpenAPI at ``/openapi.json``).
The dashboard is ``/`` and ``/ui/...`` (``tusk.ui``). Everything else falls through
to the serving app (OIP V2, ``/invocations``, ``/metrics``, ``/v1/algo``). With auth
on, every request but the health checks and the API docs carries ``Authorization:
Bearer <token>`` (dashboard pages: the same token, in their session cookie).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import anyio
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tusk import __version__
from tusk.api._deps import ApiState, Caller
from tusk.api._docs import STATIC_PREFIX, add_docs
from tusk.api.routes import ROUTERS
from tusk.auth import LEVELS, RoleService, TokenService
from tusk.errors import TuskError, Unauthenticated
from tusk.pipelines.registry import StoredPipeline
from tusk.pipelines.secrets import SecretService, may_read
from tusk.sdk import Client
from tusk.services import Services
from tusk.transfer import JOBS_HEADER
from tusk.ui._paths import is_ui_path, open_ui_path, session_token
from tusk.versioning.context import acting_as

__all__ = ["OPEN_PATHS", "Background", "create_app"]

log = logging.getLogger("tusk.api")
access = logging.getLogger("tusk.access")  # one structured line per API request

OPEN_PATHS = frozenset({"/api/v1/health", "/v2/health/live", "/v2/health/ready", "/openapi.json",
                        "/docs", "/redoc"})  # /metrics is not: its labels name deployments and model commits


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": message, "error_type": kind}, status)


class Identify:
    """Who is calling: the token's user with auth on; otherwise the ``X-Tusk-User`` header (an unverified name,
    like a git author) or the server's user. The caller acts as that user for the whole request."""

    def __init__(self, app: ASGIApp, state: ApiState, serving: ASGIApp | None = None) -> None:
        self.app = app
        self.state = state
        self.serving = _ServingPaths(serving) if serving is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        user = self.state.ops.settings.user
        if self.state.auth:
            auth = headers.get("authorization", "")
            token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            page = is_ui_path(scope["path"])  # the dashboard: its session cookie counts (and only there)
            token = token or (session_token(headers) if page else "")
            if scope["path"] in OPEN_PATHS or scope["path"].startswith(STATIC_PREFIX + "/"):
                user = "anonymous"
            elif page and (open_ui_path(scope["path"]) or not token):
                await self.app(scope, receive, send)  # no caller: a page sends the browser to sign in
                return
            elif not token:
                await _error(401, "this server requires a token: set TUSK_TOKEN or run `tusk auth login`",
                             "Unauthenticated")(scope, receive, send)
                return
            else:
                try:
                    user = await anyio.to_thread.run_sync(self.state.tokens.authenticate, token)
                except Unauthenticated as exc:
                    if page:  # an expired or revoked session: sign in again
                        await self.app(scope, receive, send)
                        return
                    await _error(401, str(exc), "Unauthenticated")(scope, receive, send)
                    return
        elif headers.get("x-tusk-user"):
            user = headers["x-tusk-user"][:255]
        scope["tusk_caller"] = caller = Caller(user, self.state)
        if not scope["path"].startswith("/api/"):
            # the serving app's own paths go to it directly: the API's router would first try each of its
            # hundred-odd routes in turn, which cost more than decoding an inference request
            target = self.serving.app if self.serving is not None and self.serving.matches(scope) else self.app
            with acting_as(user):
                await target(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if caller.waited:  # the jobs this write waited for: the client reports how they ended
                    message.setdefault("headers", []).append(
                        (JOBS_HEADER.lower().encode(), ",".join(caller.waited).encode()))
            await send(message)

        try:
            with acting_as(user):
                await self.app(scope, receive, sending)
        finally:
            access.info("%s %s %d", scope["method"], scope["path"], status, extra={
                "method": scope["method"], "path": scope["path"], "status": status, "user": user,
                "ms": round((time.perf_counter() - started) * 1000, 1)})


class _ServingPaths:
    """Which requests the serving app (mounted at ``/``, after every API and dashboard route) answers alone:
    those one of its routes matches, by path (a wrong method too: it answers the 405). None of its paths is
    under ``/api/`` or the dashboard's, so the API's router would have fallen through to it anyway."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes = [r for r in getattr(app, "routes", []) if isinstance(r, Route)]

    def matches(self, scope: Scope) -> bool:
        if is_ui_path(scope["path"]):
            return False
        return any(route.matches(scope)[0] is not Match.NONE for route in self.routes)


def creator_may_run(roles: RoleService, p: StoredPipeline, secrets: SecretService | None = None) -> str | None:
    """Why the pipeline's creator may not run it now (None when they may): reader of every input, writer of
    the output repo, and allowed to use each secret it names."""
    who = p.row.created_by
    for leaf in p.spec.pfs_leaves():
        if roles.level(who, leaf.repo) < LEVELS["reader"]:
            return f"pipeline {p.name} runs with the rights of its creator {who}, who is not a reader of {leaf.repo}"
    if roles.level(who, p.name) < LEVELS["writer"]:
        return f"pipeline {p.name} runs with the rights of its creator {who}, who is not a writer of {p.name}"
    if secrets is not None and p.spec.transform.secrets:
        admin = roles.is_admin(who)
        for name, info in secrets.infos(secrets.names(p.spec)).items():  # (one gone: the job says so)
            if not may_read(info, who, admin):
                return f"pipeline {p.name} runs with the rights of its creator {who}, who may not use secret {name}"
    return None


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


class Background(Protocol):
    """Work the app runs beside its requests, started with it and stopped before it closes (the scheduler)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def create_app(services: Services, *, auth: bool = False, serving: Starlette | None = None,
               background: Sequence[Background] = (), close_services: bool = False) -> FastAPI:
    """The management API and the dashboard over ``services``.

    ``serving``: an app that answers every path the API and the dashboard do not (the deployments' inference
    endpoints), run for as long as this one. ``background``: started after the serving app, stopped before it.
    ``tusk.root.app.create_server_app`` passes both; the API itself knows neither.
    """
    state = ApiState(ops=Client(services=services, run_jobs=False), auth=auth, tokens=TokenService(services.ctx),
                     roles=RoleService(services.ctx))
    serving_app = serving
    if auth:  # a pipeline runs with its creator's rights, as this API's role bindings give them
        services.jobs.authorize = lambda p: creator_may_run(state.roles, p, services.secrets)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:  # exits in reverse: the services close last
            if close_services:
                stack.callback(services.close)
            if serving_app is not None:
                await stack.enter_async_context(serving_app.router.lifespan_context(serving_app))
            for work in background:
                work.start()
                stack.push_async_callback(anyio.to_thread.run_sync, work.stop)
            yield

    app = FastAPI(title="Tusk", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Versioned data, pipelines, models and deployments. Errors are "
                              '`{"error": message, "error_type": class}` with the status of the error class.')
    app.state.api = state
    for router in ROUTERS:
        app.include_router(router)
    add_docs(app)

    @app.exception_handler(TuskError)
    async def tusk_error(request: Request, exc: TuskError) -> Response:
        if exc.http_status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        return _error(exc.http_status, str(exc), type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error(400, _describe(exc), "InvalidArgument")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail), "NotFound" if exc.status_code == 404 else "HTTPError")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        incident = secrets.token_hex(4)  # the message may name server paths: it stays in the server's log
        log.exception("unexpected error %s in %s %s", incident, request.method, request.url.path)
        return _error(500, f"internal error {incident}: the server's log has the details", "InternalError")

    from tusk.ui.app import add_ui  # (here: the pages import the API's routes)

    add_ui(app)  # the dashboard at / and /ui/...: before the serving app's catch-all mount
    if serving_app is not None:
        app.mount("/", serving_app)
    app.add_middleware(Identify, state=state, serving=serving_app)
    return app


def route_table(app: FastAPI) -> list[dict[str, str]]:
    """(method, path) of every API operation in the OpenAPI document: what the auth tests walk."""
    return [{"method": method.upper(), "path": path} for path, ops in sorted(app.openapi()["paths"].items())
            for method in sorted(ops)]
