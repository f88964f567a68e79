"""``add_ui(app)``: the dashboard, at ``/`` and under ``/ui/...``, on the API server's FastAPI app.

Mounted before the serving app's catch-all ``/`` mount, so OIP (``/v2/...``), ``/invocations``, ``/metrics`` and
``/v1/algo/...`` keep their paths. None of it is in the OpenAPI document.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from tusk.errors import PermissionDenied, TuskError, Unauthenticated
from tusk.ui._paths import COOKIE, UI_PREFIX
from tusk.ui._web import error_page, form, render, safe_next, ui_caller
from tusk.ui.pages import algorithms, data, deployments, lineage, models, overview, pipelines

__all__ = ["add_ui"]

_STATIC = Path(__file__).parent / "static"

auth_router = APIRouter(include_in_schema=False)


@auth_router.get(UI_PREFIX + "/login")
def login_page(request: Request) -> Response:
    return render(request, "auth/login.html", title="Sign in", next=safe_next(request.query_params.get("next")))


@auth_router.post(UI_PREFIX + "/login")
async def login(request: Request) -> Response:
    """Check the token as the API would, and keep it in an HttpOnly, SameSite=Strict cookie for the pages."""
    try:
        fields = await form(request)
    except PermissionDenied as exc:
        return error_page(request, exc)
    token = fields.get("token", "").strip()
    target = safe_next(fields.get("next"))
    state = request.app.state.api
    if state.auth:
        try:
            await anyio.to_thread.run_sync(state.tokens.authenticate, token)
        except Unauthenticated as exc:
            return render(request, "auth/login.html", 401, title="Sign in", next=target, message=str(exc))
    response = RedirectResponse(target, 303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
    return response


@auth_router.post(UI_PREFIX + "/logout")
async def logout(request: Request) -> Response:
    try:
        await form(request)
    except TuskError as exc:
        return error_page(request, exc)
    response = RedirectResponse(UI_PREFIX + "/login" if request.app.state.api.auth else "/", 303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@auth_router.get(UI_PREFIX)
def ui_root(request: Request) -> Response:
    return RedirectResponse("/", 307 if ui_caller(request) else 303)


ROUTERS = [auth_router, overview.router, data.router, pipelines.router, models.router, deployments.router,
           algorithms.router, lineage.router]


def add_ui(app: FastAPI) -> None:
    """Add the dashboard's routes and assets to the API app (call before mounting anything at ``/``)."""
    for router in ROUTERS:
        app.include_router(router)
    app.mount(UI_PREFIX + "/static", StaticFiles(directory=_STATIC), name="ui-static")
