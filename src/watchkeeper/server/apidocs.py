"""``/docs`` and ``/redoc`` without a CDN: Swagger UI and ReDoc from the installed
``fastapi-offline`` package.

FastAPI's own pages load their scripts and stylesheets from jsDelivr (and ReDoc's fonts from
Google), so they are blank on a machine without internet access. Here the pages are FastAPI's
(``get_swagger_ui_html``, ``get_redoc_html``) with every URL on this server: the package's
files are served under :data:`STATIC`, open without a token like ``/docs`` itself
(``server/auth.py``): they are public files.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

STATIC = "/docs/static"
FILES = Path(fastapi_offline.__file__).parent / "static"  # Swagger UI 5, ReDoc, an icon
# the page's own inline start-up script is the one script not from a file of this server
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _secured(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


def install_docs(app: FastAPI) -> None:
    """Serve the files under :data:`STATIC` and the pages at ``/docs`` and ``/redoc`` (the
    app is made with ``docs_url=None, redoc_url=None``)."""
    app.mount(STATIC, StaticFiles(directory=FILES), name="api-docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return _secured(
            get_swagger_ui_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} API",
                swagger_js_url=f"{root}{STATIC}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{STATIC}/swagger-ui.css",
                swagger_favicon_url=f"{root}{STATIC}/favicon.png",
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return _secured(
            get_redoc_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} API",
                redoc_js_url=f"{root}{STATIC}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{STATIC}/favicon.png",
                with_google_fonts=False,
            )
        )
