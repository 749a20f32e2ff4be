"""What a web page can do to ``watchkeeper serve``, checked over HTTP against the real process on
both backends: a JSON route refuses ``text/plain`` and forms (415, nothing created), a change
posted from another site's page is refused (403), a rebound Host name is refused (400); with
tokens on, the dashboard's cookie is a server-side session (not the token, ended by signing out
even when the old cookie is replayed, kept across a restart), its forms carry a CSRF token,
and failed token checks are limited per client (429 with Retry-After).

The same attacks from a real browser are in ``tests/dashboard/test_cross_site.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.service.fixtures import Server
from watchkeeper.settings import Settings
from watchkeeper.store.state import Store
from watchkeeper.store.tokens import create_token, revoke_token

SILENCE = {"matchers": {"model": "*"}, "duration": "1h", "comment": "all quiet"}
FAILURE_LIMIT = 3


@pytest.fixture(scope="module")
def open_server(module_server: Any, module_databases: Callable[[], str]) -> Server:
    """The default server: loopback, no tokens."""
    server: Server = module_server(module_databases())
    return server


@pytest.fixture(scope="module")
def secured(module_server: Any, module_databases: Callable[[], str]) -> Iterator[Server]:
    """Tokens on, three failed token checks per client and minute."""
    env = {
        "WATCHKEEPER_REQUIRE_TOKENS": "true",
        "WATCHKEEPER_AUTH_FAILURE_LIMIT": str(FAILURE_LIMIT),
        "WATCHKEEPER_AUTH_FAILURE_WINDOW_SECONDS": "60",
    }
    server: Server = module_server(module_databases(), env=env)
    yield server


def make_token(server: Server, *scopes: str) -> str:
    store = Store(Settings(database_url=server.database_url).sqlalchemy_url)
    try:
        return create_token(store, "-".join(scopes), list(scopes))
    finally:
        store.close()


def error(r: httpx.Response) -> dict[str, Any]:
    detail: dict[str, Any] = r.json()["error"]
    assert detail["status"] == r.status_code
    return detail


def silences(client: httpx.Client) -> list[Any]:
    answer: list[Any] = client.get("/v1/silences").json()["silences"]
    return answer


# ---------------------------------------------------------------------- content types
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
def test_a_json_route_refuses_a_body_a_page_can_send_without_asking(
    open_server: Server, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    with open_server.client() as c:
        before = len(silences(c))
        r = c.post("/v1/silences", content=json.dumps(SILENCE), headers=headers)
        assert r.status_code == 415, r.text
        message = error(r)["message"]
        assert error(r)["type"] == "UnsupportedMediaType"
        assert (repr(content_type) if content_type else "no content type") in message
        assert "application/json" in message
        assert len(silences(c)) == before  # nothing was silenced

        monitor = {"name": "forged", "metric": "drift_share", "model": "m", "above": 0.1}
        r = c.post("/v1/monitors", content=json.dumps(monitor), headers=headers)
        assert r.status_code == 415 and c.get("/v1/monitors/forged").status_code == 404
        actuals = {"actuals": [{"prediction_id": "p", "label": 1}]}
        r = c.post("/v1/models/m/actuals", content=json.dumps(actuals), headers=headers)
        assert r.status_code == 415, r.text
        # the other formats keep their own types, and the error names them all
        r = c.post("/v1/models/m/predictions", content=b"x", headers=headers)
        assert r.status_code == 415
        assert "application/vnd.apache.arrow.stream" in error(r)["message"]
        r = c.put("/v1/models/m/versions/v1", content=b"a\n1\n", headers=headers)
        assert r.status_code == 415 and "text/csv" in error(r)["message"]


def test_the_same_silence_as_json_is_created(open_server: Server) -> None:
    with open_server.client() as c:
        before = len(silences(c))
        r = c.post("/v1/silences", json=SILENCE)
        assert r.status_code == 201, r.text
        r = c.post(  # a charset parameter is fine
            "/v1/silences",
            content=json.dumps(SILENCE),
            headers={"content-type": "application/json; charset=utf-8"},
        )
        assert r.status_code == 201, r.text
        assert len(silences(c)) == before + 2


# ---------------------------------------------------------------------- origins
@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "null"},  # a sandboxed frame or a file
        {"referer": "https://evil.example/page.html"},  # no Origin: the Referer counts
    ],
    ids=["origin", "null", "referer"],
)
def test_a_change_from_another_sites_page_is_refused(
    open_server: Server, headers: dict[str, str]
) -> None:
    with open_server.client() as c:
        before = len(silences(c))
        r = c.post("/v1/silences", json=SILENCE, headers=headers)
        assert r.status_code == 403, r.text
        assert error(r)["type"] == "ForeignOrigin"
        assert next(iter(headers.values())) in error(r)["message"]
        r = c.delete("/v1/monitors/anything", headers=headers)
        assert r.status_code == 403
        assert len(silences(c)) == before
        # reading is not a change: the Host check covers reads
        assert c.get("/v1/models", headers=headers).status_code == 200


def test_a_change_from_this_servers_own_page_or_no_page_passes(open_server: Server) -> None:
    with open_server.client() as c:
        for headers in (
            {"origin": open_server.url},
            {"referer": f"{open_server.url}/ui/alerts"},
            {},  # the SDK, curl: no page at all
        ):
            r = c.post("/v1/silences", json=SILENCE, headers=headers)
            assert r.status_code == 201, (headers, r.text)
        # another port of the same machine is another site, and so is another name
        for origin in ("http://127.0.0.1:1", f"http://localhost:{open_server.port}"):
            r = c.post("/v1/silences", json=SILENCE, headers={"origin": origin})
            assert r.status_code == 403


# ---------------------------------------------------------------------- hosts
def test_a_rebound_host_name_is_refused(open_server: Server) -> None:
    """DNS rebinding: a site points its own name at 127.0.0.1; the browser then sends that
    name in Host, and the server must not answer it."""
    with open_server.client() as c:
        for host in (f"evil.example:{open_server.port}", "evil.example", "127.0.0.1.evil.example"):
            r = c.get("/v1/models", headers={"host": host})
            assert r.status_code == 400, (host, r.text)
            detail = error(r)
            assert detail["type"] == "InvalidHost" and repr(host) in detail["message"]
            assert "allowed_hosts" in detail["message"]
            r = c.post("/v1/silences", json=SILENCE, headers={"host": host})
            assert r.status_code == 400
        for host in (f"localhost:{open_server.port}", f"127.0.0.1:{open_server.port}", "[::1]"):
            assert c.get("/v1/models", headers={"host": host}).status_code == 200, host


def test_allowed_hosts_names_the_served_names(server: Any, database_url: str) -> None:
    env = {"WATCHKEEPER_ALLOWED_HOSTS": "wk.example.com,*.internal.example"}
    srv = server(database_url, env=env)
    with srv.client() as c:
        assert c.get("/healthz", headers={"host": "wk.example.com"}).status_code == 200
        assert c.get("/healthz", headers={"host": "a.internal.example:8700"}).status_code == 200
        r = c.get("/v1/models")  # 127.0.0.1 is no longer one of them
        assert r.status_code == 400 and "wk.example.com, *.internal.example" in r.text
        assert c.get("/healthz").status_code == 200  # probes name an address: any Host


# ---------------------------------------------------------------------- rate limit
def test_repeated_bad_tokens_get_429_until_the_window_passes(secured: Server) -> None:
    good = make_token(secured, "read")
    me = {"x-forwarded-for": "203.0.113.7"}  # uvicorn trusts it from 127.0.0.1, like a proxy
    with secured.client() as c:
        for _ in range(FAILURE_LIMIT):
            r = c.get("/v1/models", headers={**me, "authorization": "Bearer wk_nope_nope"})
            assert r.status_code == 401
        r = c.get("/v1/models", headers={**me, "authorization": "Bearer wk_nope_nope"})
        assert r.status_code == 429, r.text
        assert 55 <= int(r.headers["retry-after"]) <= 60
        assert error(r)["type"] == "TooManyFailures" and "203.0.113.7" in error(r)["message"]
        # while blocked, no token is checked from there, not even a good one
        r = c.get("/v1/models", headers={**me, "authorization": f"Bearer {good}"})
        assert r.status_code == 429
        # another client is not held up; a missing header is not a guess
        other = {"x-forwarded-for": "203.0.113.8", "authorization": f"Bearer {good}"}
        assert c.get("/v1/models", headers=other).status_code == 200
        for _ in range(FAILURE_LIMIT + 1):
            r = c.get("/v1/models", headers={"x-forwarded-for": "203.0.113.9"})
            assert r.status_code == 401


def test_repeated_bad_logins_get_429(secured: Server) -> None:
    me = {"x-forwarded-for": "203.0.113.20"}
    with secured.client() as c:
        csrf = csrf_of(c.get("/ui/login", headers=me).text)
        for _ in range(FAILURE_LIMIT):
            r = c.post("/ui/login", data={"token": "wk_a_b", "csrf": csrf}, headers=me)
            assert r.status_code == 401 and "not valid" in r.text
        r = c.post(
            "/ui/login", data={"token": make_token(secured, "read"), "csrf": csrf}, headers=me
        )
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "too many failed token checks" in r.text and "wk_session" not in str(r.cookies)


# ---------------------------------------------------------------------- sessions
def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no form with a CSRF token"
    return found.group(1)


def sign_in(c: httpx.Client, token: str) -> httpx.Client:
    csrf = csrf_of(c.get("/ui/login").text)
    r = c.post("/ui/login", data={"token": token, "csrf": csrf, "next": "/ui/alerts"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/alerts", r.text
    return c


def test_the_cookie_is_a_session_id_not_the_token(secured: Server) -> None:
    token = make_token(secured, "read")
    with secured.client() as c:
        sign_in(c, token)
        cookie = c.cookies["wk_session"]
        _, ident, secret = token.split("_", 2)  # the secret may itself start with "_"
        assert cookie != token and secret not in cookie and ident not in cookie
        assert len(cookie) >= 40
        assert c.get("/ui/alerts").status_code == 200
        # the session id is no API credential either
        r = c.get("/v1/models", headers={"authorization": f"Bearer {cookie}"})
        assert r.status_code == 401


def test_signing_out_ends_the_session_a_replayed_cookie_opens_nothing(secured: Server) -> None:
    with secured.client() as c:
        sign_in(c, make_token(secured, "admin"))
        old = c.cookies["wk_session"]
        page = c.get("/ui/alerts")
        assert page.status_code == 200
        r = c.post("/ui/logout", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    with secured.client() as replay:
        replay.cookies.set("wk_session", old)
        r = replay.get("/ui/alerts")
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")


def test_a_session_survives_a_restart_and_ends_with_its_token(
    module_server: Any, module_databases: Callable[[], str]
) -> None:
    srv: Server = module_server(module_databases(), env={"WATCHKEEPER_REQUIRE_TOKENS": "true"})
    token = make_token(srv, "read")
    with srv.client() as c:
        cookie = sign_in(c, token).cookies["wk_session"]
    srv.restart()
    with srv.client() as c:
        c.cookies.set("wk_session", cookie)
        assert c.get("/").status_code == 200  # kept in the database, not in the process
        store = Store(Settings(database_url=srv.database_url).sqlalchemy_url)
        try:
            revoke_token(store, token.split("_")[1])
        finally:
            store.close()
        assert c.get("/").status_code == 303


def test_a_login_post_without_the_forms_token_is_refused(secured: Server) -> None:
    token = make_token(secured, "admin")
    with secured.client() as c:
        csrf = csrf_of(c.get("/ui/login").text)
        for form in ({"token": token}, {"token": token, "csrf": "x" * 43}):
            r = c.post("/ui/login", data=form)
            assert r.status_code == 403 and "CSRF token is missing or wrong" in r.text
            assert "wk_session" not in c.cookies
        # a page of another site cannot post it even with the right one
        r = c.post(
            "/ui/login",
            data={"token": token, "csrf": csrf},
            headers={"origin": "http://evil.example"},
        )
        assert r.status_code == 403 and "wk_session" not in c.cookies
    with secured.client() as fresh:  # the field without the cookie it doubles
        r = fresh.post("/ui/login", data={"token": token, "csrf": csrf})
        assert r.status_code == 403 and "wk_session" not in fresh.cookies


def test_dashboard_forms_need_the_sessions_csrf_token(secured: Server) -> None:
    with secured.client() as c:
        sign_in(c, make_token(secured, "admin"))
        for form in (
            {"alert": "1", "duration": "1h"},
            {"alert": "1", "duration": "1h", "csrf": "no"},
        ):
            r = c.post("/ui/alerts/silence", data=form)
            assert r.status_code == 403 and "CSRF token is missing or wrong" in r.text
        r = c.post("/ui/logout", data={})
        assert r.status_code == 403
        assert c.get("/ui/alerts").status_code == 200  # still signed in


def test_without_tokens_dashboard_forms_need_the_cookies_csrf_token(open_server: Server) -> None:
    with open_server.client() as c:
        silence = c.post("/v1/silences", json=SILENCE).json()["id"]
        path = f"/ui/alerts/silences/{silence}/expire"
        assert c.get("/ui/alerts").status_code == 200
        csrf = c.cookies["wk_csrf"]
        r = c.post(path, data={"next": "/ui/alerts"})
        assert r.status_code == 403 and "CSRF token" in r.text
        r = c.post(path, data={"csrf": "y" * 43})
        assert r.status_code == 403
        with open_server.client() as without_cookie:
            assert without_cookie.post(path, data={"csrf": csrf}).status_code == 403
        active = {
            s["id"] for s in c.get("/v1/silences", params={"active": True}).json()["silences"]
        }
        assert silence in active
        r = c.post(path, data={"csrf": csrf, "next": "/ui/alerts"})
        assert r.status_code == 303 and r.headers["location"] == "/ui/alerts?done=ended"
        active = {
            s["id"] for s in c.get("/v1/silences", params={"active": True}).json()["silences"]
        }
        assert silence not in active
