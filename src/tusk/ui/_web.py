"""What every page shares: the session cookie, CSRF tokens, the caller, templates, pagination and errors.

Pages read through the caller the API's auth middleware made (``tusk.api._deps.Caller``) and call the same
operations with the same checks as the API routes; a write is a form post that calls the API route function
itself. The session cookie is honoured on dashboard paths only (never under ``/api/``), so a cross-site page
cannot drive the API with it; dashboard posts also carry a CSRF token bound to the session.
"""

from __future__ import annotations

import hmac
import json
import secrets
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tusk.api._deps import Caller
from tusk.errors import PermissionDenied, TuskError, Unauthenticated
from tusk.ids import short_id
from tusk.ui._paths import CSRF_COOKIE, UI_PREFIX, is_ui_path, session_token
from tusk.units import human_size

__all__ = ["PAGE", "Page", "act", "back", "cookie", "csrf_token", "env", "error_page", "form", "page",
           "page_of", "render", "safe_next", "sign_in_redirect", "ui_caller"]

PAGE = 25  # rows per page on every list
_HERE = Path(__file__).parent
T = TypeVar("T")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def csrf_token(request: Request) -> tuple[str, bool]:
    """The browser's CSRF token (a double-submit cookie, SameSite=Strict), and whether it is new."""
    token = cookie(request, CSRF_COOKIE)
    return (token, False) if len(token) == 43 else (secrets.token_urlsafe(32), True)


def cookie(request: Request, name: str) -> str:
    return session_token({"cookie": request.headers.get("cookie", "")}, name)


env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(["html"]),
                  trim_blocks=True, lstrip_blocks=True)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def _seconds(start: datetime | None, end: datetime | None) -> str:
    return f"{(end - start).total_seconds():.1f} s" if start and end else "—"


env.filters.update(size=human_size, short=lambda v: short_id(v) if v else "—", when=_when,
                   pretty=lambda v: json.dumps(v, indent=2, sort_keys=True, default=str),
                   quote=lambda v: urllib.parse.quote(str(v), safe="/@:^"))
env.globals.update(seconds=_seconds)


@dataclass
class Page:
    """One page of a list, and where the neighbours are."""

    rows: list[Any]
    number: int
    more: bool

    @property
    def prev(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.more else None


def page_of(request: Request, fetch: Callable[[int, int], Sequence[T]], size: int = PAGE) -> Page:
    """Page ``?page=N`` of a list: ``fetch(offset, limit)`` returns at most ``limit`` rows from the
    ``offset``-th. One row past the page is asked for, to know whether there is a next page; so a page costs
    its own rows, wherever it is in the list."""
    try:
        number = max(1, min(int(request.query_params.get("page", "1")), 10_000))
    except ValueError:
        number = 1
    rows = list(fetch((number - 1) * size, size + 1))
    return Page(rows[:size], number, len(rows) > size)


def ui_caller(request: Request) -> Caller | None:
    """The caller, or None when the server wants a token and the browser has no (valid) session."""
    caller = request.scope.get("tusk_caller")
    return caller if isinstance(caller, Caller) else None


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    caller = ui_caller(request)
    csrf, fresh = csrf_token(request)
    context.setdefault("title", "Tusk")
    body = env.get_template(template).render(
        request=request, caller=caller, user=caller.user if caller else None,
        auth=request.app.state.api.auth, csrf=csrf, nav_path=request.url.path,
        notice=request.query_params.get("notice"), **context)
    response = HTMLResponse(body, status, headers={
        "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store"})
    if fresh:
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
    return response


def error_page(request: Request, exc: TuskError) -> Response:
    return render(request, "error.html", exc.http_status, title="Error", message=str(exc),
                  kind=type(exc).__name__)


def sign_in_redirect(request: Request) -> Response:
    target = urllib.parse.quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return RedirectResponse(f"{UI_PREFIX}/login?next={target}", 303)


async def form(request: Request) -> dict[str, str]:
    """A posted form (urlencoded), once its CSRF token and origin are seen to be this session's."""
    body = (await request.body()).decode("utf-8", "replace")
    fields = {k: v[0] for k, v in urllib.parse.parse_qs(body, keep_blank_values=True).items()}
    origin = request.headers.get("origin")
    if origin is not None and urllib.parse.urlsplit(origin).netloc != request.headers.get("host"):
        raise PermissionDenied("this form came from another site; reload the page and try again")
    expected = cookie(request, CSRF_COOKIE)
    if not expected or not hmac.compare_digest(fields.get("csrf", ""), expected):
        raise PermissionDenied("this form's CSRF token is missing or stale; reload the page and try again")
    return fields



def page(request: Request, build: Callable[[Caller], Response]) -> Response:
    """Run a page: to the sign-in page without a session; a refused or failed read is an error page with the
    status the API would answer."""
    caller = ui_caller(request)
    if caller is None:
        if request.headers.get("hx-request"):  # a refresh of part of a page: send the whole page to sign in
            return Response(status_code=204, headers={"HX-Redirect": f"{UI_PREFIX}/login?next=/"})
        return sign_in_redirect(request)
    try:
        return build(caller)
    except TuskError as exc:
        return error_page(request, exc)


def back(to: str, notice: str) -> Response:
    """After a write: back to the page it was made on, with what happened."""
    sep = "&" if "?" in to else "?"
    return RedirectResponse(f"{to}{sep}notice={urllib.parse.quote(notice)}", 303)


def safe_next(target: str | None) -> str:
    """A dashboard path to go to next; anything else (another host, a scheme) is the overview."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target if is_ui_path(urllib.parse.urlsplit(target).path) else "/"


async def act(request: Request, to: str, notice: str, work: Callable[[Caller, dict[str, str]], object]) -> Response:
    """A write from a page: a form with this browser's CSRF token, by a signed-in caller, done by the API route
    function (so the server refuses exactly what the API refuses); then back to ``to``."""
    try:
        fields = await form(request)
        caller = ui_caller(request)
        if caller is None:
            raise Unauthenticated("sign in first: this server requires a token")
        await anyio.to_thread.run_sync(lambda: work(caller, fields))
    except TuskError as exc:
        return error_page(request, exc)
    return back(safe_next(fields.get("back")) if fields.get("back") else to, notice)
