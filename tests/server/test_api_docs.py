"""``/docs`` works offline: Swagger UI's script, stylesheet and icon come from the installed
``fastapi-offline`` package, served by this server (open like ``/docs``), not from a CDN; the
same for ``/redoc``.
The browser test opens the page in Chromium with every request to another origin refused, as
on a machine without internet access, and waits for the operations to render."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from tests.service.fixtures import ServerFactory, make_database
from watchkeeper.server.app import create_app
from watchkeeper.settings import load_settings

CHROMIUM = os.environ.get("WATCHKEEPER_CHROMIUM", "/usr/bin/chromium")
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with warnings.catch_warnings():  # starlette asks for httpx2, which is not needed here
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient

    settings = load_settings(
        environ={}, data_dir=str(tmp_path_factory.mktemp("data")), require_tokens=True
    )
    app = create_app(settings)
    try:
        # no lifespan: the page and its files need no service
        yield TestClient(app, base_url="http://localhost")
    finally:
        app.state.store.close()


def _urls(page: str) -> list[str]:
    return re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page)


@pytest.mark.parametrize(
    ("page", "files"),
    [("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")), ("/redoc", ("redoc.standalone.js",))],
)
def test_the_docs_pages_name_only_this_server_s_files(
    client: Any, page: str, files: tuple[str, ...]
) -> None:
    r = client.get(page)  # tokens are on: no header
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    urls = _urls(r.text)
    for name in files:
        assert any(u.endswith(name) for u in urls), (name, urls)
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{url} is not on this server"
    assert "cdn" not in r.text.lower()
    assert "default-src 'self'" in r.headers["content-security-policy"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_pages_files_answer_without_a_token(client: Any, page: str) -> None:
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "json"}
    for url in _urls(client.get(page).text):
        r = client.get(urljoin("http://localhost/docs", url))  # tokens are on: no header
        assert r.status_code == 200, (url, r.status_code)
        kind = next(v for k, v in kinds.items() if url.endswith(k))
        assert kind in r.headers["content-type"], (url, r.headers["content-type"])
        assert r.content, url
    assert client.get("/docs/static/nonesuch.js").status_code == 404
    assert client.get("/v1/models").status_code == 401  # the rest still needs one


@pytest.mark.slow
@pytest.mark.parametrize(
    ("page_path", "operation"),
    [("/docs", ".swagger-ui .opblock"), ("/redoc", "[data-section-id^='operation/']")],
)
def test_the_docs_render_offline_in_a_browser(
    server: ServerFactory, tmp_path: Path, page_path: str, operation: str
) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - playwright is a dev dependency
        pytest.skip(f"playwright is not installed: {exc}")
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {CHROMIUM} (CI is set: the browser tests must run)")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with make_database("sqlite", tmp_path / "db") as url:
        srv = server(url)
        refused: list[str] = []
        failed: list[str] = []
        errors: list[str] = []

        def offline(route: Any) -> None:
            if route.request.url.startswith(srv.url):
                route.continue_()
            else:
                refused.append(route.request.url)
                route.abort()

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page()
                page.route("**/*", offline)
                page.on("requestfailed", lambda req: failed.append(req.url))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(f"{srv.url}{page_path}")
                page.wait_for_selector(operation, timeout=30_000, state="attached")
                rendered = page.locator(operation).count()
                text = page.inner_text("body")
            finally:
                browser.close()
    assert rendered >= 20, rendered
    assert "/readyz" in text and "/v1/models/{model}/metrics" in text
    assert not refused, refused
    # ReDoc's bundle names the one picture of its "API docs by Redocly" footer on its CDN; the
    # page's Content-Security-Policy blocks it, and nothing else is missing
    assert [u for u in failed if u != REDOC_LOGO] == [], failed
    assert [e for e in errors if REDOC_LOGO not in e] == [], errors
