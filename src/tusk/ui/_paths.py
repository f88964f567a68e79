"""Which paths are the dashboard's, and its session cookie: what the API's auth middleware needs to know of the
dashboard (kept apart from the pages, so the middleware imports nothing else of them)."""

from __future__ import annotations

import urllib.parse

__all__ = ["COOKIE", "CSRF_COOKIE", "UI_PREFIX", "is_ui_path", "open_ui_path", "session_token"]

COOKIE = "tusk_session"
CSRF_COOKIE = "tusk_csrf"
UI_PREFIX = "/ui"


def is_ui_path(path: str) -> bool:
    return path == "/" or path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


def open_ui_path(path: str) -> bool:
    """Dashboard paths that need no session: its assets, and signing in and out."""
    return path.startswith(UI_PREFIX + "/static/") or path in (UI_PREFIX + "/login", UI_PREFIX + "/logout")


def session_token(headers: dict[str, str], cookie: str = COOKIE) -> str:
    """The token in the session cookie (empty when there is none)."""
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == cookie:
            return urllib.parse.unquote(value)
    return ""
