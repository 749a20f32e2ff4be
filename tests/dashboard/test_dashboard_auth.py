"""The dashboard with tokens on: a login page, an HttpOnly SameSite=Strict session cookie, read
scope sees and admin acts, while the API keeps requiring its bearer token; and the static files,
served to anyone, cached for a year."""

from __future__ import annotations

import gzip
import re
import warnings
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.server.dashboard.assets import asset_urls
from watchkeeper.store.tokens import create_token, revoke_token


@pytest.fixture(scope="module")
def secured(
    module_databases: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """An app that requires tokens (in-process, background threads not started)."""
    from watchkeeper.server.app import create_app
    from watchkeeper.settings import load_settings

    settings = load_settings(
        environ={},
        data_dir=str(tmp_path_factory.mktemp("secured")),
        database_url=module_databases(),
        require_tokens="true",
    )
    app = create_app(settings)
    yield app
    app.state.store.close()


def client(app: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient
    return TestClient(app, base_url="http://localhost", follow_redirects=False)


def token(app: Any, *scopes: str) -> str:
    return create_token(app.state.store, "-".join(scopes), list(scopes))


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def login(app: Any, value: str, next_path: str = "/") -> Any:
    c = client(app)
    csrf = csrf_of(c.get("/ui/login").text)
    r = c.post("/ui/login", data={"token": value, "next": next_path, "csrf": csrf})
    return c, r


def test_without_a_session_pages_redirect_to_the_login_page(secured: Any) -> None:
    c = client(secured)
    for path, target in (
        ("/", "/ui/login?next=%2F"),
        ("/ui/models/churn?range=7d", "/ui/login?next=%2Fui%2Fmodels%2Fchurn%3Frange%3D7d"),
        ("/ui/alerts", "/ui/login?next=%2Fui%2Falerts"),
    ):
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"] == target
    page = c.get("/ui/login?next=/ui/alerts")
    assert page.status_code == 200 and 'name="token"' in page.text
    assert 'value="/ui/alerts"' in page.text


def test_a_bad_token_or_one_without_read_scope_is_refused(secured: Any) -> None:
    c, r = login(secured, "wk_nope_nope")
    assert r.status_code == 401 and "not valid" in r.text and "set-cookie" not in r.headers
    c, r = login(secured, token(secured, "ingest"))
    assert r.status_code == 401 and "needs read or admin" in r.text
    assert c.get("/").status_code == 303


def test_read_token_session_cookie_is_httponly_and_strict(secured: Any) -> None:
    value = token(secured, "read")
    c, r = login(secured, value, "/ui/alerts")
    assert r.status_code == 303 and r.headers["location"] == "/ui/alerts"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("wk_session=")
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "max-age=43200" in flags  # session_hours: 12
    assert c.get("/").status_code == 200
    assert c.get("/ui/alerts").status_code == 200
    # the cookie is not an API credential: the API wants its bearer token, as before
    assert c.get("/v1/models").status_code == 401
    bearer = {"authorization": f"Bearer {value}"}
    assert client(secured).get("/v1/models", headers=bearer).status_code == 200
    assert client(secured).put("/v1/models/m/versions/v1", headers=bearer).status_code == 403


def test_read_scope_sees_but_cannot_silence(secured: Any) -> None:
    c, _ = login(secured, token(secured, "read"))
    page = c.get("/ui/alerts")
    assert page.status_code == 200 and 'action="/ui/alerts/silence"' not in page.text
    form = {"alert": "1", "duration": "1h", "csrf": csrf_of(page.text)}
    r = c.post("/ui/alerts/silence", data=form)
    assert r.status_code == 403 and "read scope only" in r.text


def test_admin_form_posted_from_another_site_is_refused(secured: Any) -> None:
    c, _ = login(secured, token(secured, "admin"))
    r = c.post(
        "/ui/alerts/silence",
        data={"alert": "1", "duration": "1h"},
        headers={"origin": "http://evil.example"},
    )
    assert r.status_code == 403 and "another site" in r.text


def test_a_revoked_token_ends_its_session(secured: Any) -> None:
    value = token(secured, "read")
    c, _ = login(secured, value)
    assert c.get("/").status_code == 200
    revoke_token(secured.state.store, value.split("_")[1])
    assert c.get("/").status_code == 303


def test_logout_clears_the_cookie(secured: Any) -> None:
    c, _ = login(secured, token(secured, "read"))
    r = c.post("/ui/logout", data={"csrf": csrf_of(c.get("/").text)})
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert (
        'wk_session=""' in r.headers["set-cookie"] or "max-age=0" in r.headers["set-cookie"].lower()
    )
    assert c.get("/").status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_login_never_redirects_to_another_site(secured: Any, target: str) -> None:
    _, r = login(secured, token(secured, "read"), target)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_static_files_need_no_login_and_are_cached(secured: Any) -> None:
    c = client(secured)
    plotly_url = asset_urls()["plotly"]
    installed = resources.files("plotly").joinpath("package_data/plotly.min.js").read_bytes()
    r = c.get(plotly_url, headers={"accept-encoding": "identity"})
    assert r.status_code == 200 and r.content == installed
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["content-type"].startswith("text/javascript")
    zipped = c.get(plotly_url, headers={"accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == installed
    again = c.get(plotly_url, headers={"if-none-match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content
    for name in ("js", "css"):
        own = c.get(asset_urls()[name])
        source = Path(resources.files("watchkeeper").joinpath("templates/dashboard")) / (
            "dashboard." + name
        )
        assert own.status_code == 200 and own.content == source.read_bytes()
    assert c.get("/ui/static/nothing.js").status_code == 404


def test_gzip_body_is_the_same_file() -> None:
    from watchkeeper.server.dashboard.assets import assets

    plotly = next(a for a in assets().values() if a.name.startswith("plotly-"))
    assert gzip.decompress(plotly.gzipped) == plotly.body
    assert len(plotly.gzipped) < len(plotly.body) / 2
