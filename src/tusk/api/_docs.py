"""The API's documentation pages, Swagger UI at /docs and ReDoc at /redoc, from vendored assets (no CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_PREFIX", "add_docs"]

STATIC_PREFIX = "/api/static"
_STATIC = Path(__file__).parent / "static"


def add_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc with the assets in ``tusk/api/static`` (see its README for versions and licences)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Tusk API",
                                   swagger_js_url=f"{STATIC_PREFIX}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{STATIC_PREFIX}/swagger-ui.css",
                                   swagger_favicon_url=f"{STATIC_PREFIX}/favicon-32x32.png")

    @router.get("/redoc")
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="Tusk API",
                              redoc_js_url=f"{STATIC_PREFIX}/redoc.standalone.js",
                              redoc_favicon_url=f"{STATIC_PREFIX}/favicon-32x32.png", with_google_fonts=False)

    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=_STATIC), name="static")
