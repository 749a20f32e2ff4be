"""Attacks from another site's page, in a real browser (Debian's Chromium driven by Playwright)
against ``watchkeeper serve``.

The attacker's site is ``http://evil.test:<port>``: a small HTTP server of the test, its name
mapped to 127.0.0.1 by Chromium's ``--host-resolver-rules`` (as a DNS answer would), so it is
another origin than the service's ``http://127.0.0.1:<port>``. Its pages try what any page on
the web could do to a service on the visitor's machine:

* silence every alert with a ``text/plain`` ``fetch`` and a ``text/plain`` form (neither needs
  a CORS preflight) — nothing is created;
* read the API under its own name (DNS rebinding: the name points at 127.0.0.1, so the browser
  sends ``Host: evil.test``) — refused;
* sign the visitor in with the attacker's token (login CSRF) — no session.

A person signing in and out through the page still works, and the cookie they get is a
session id that stops working once they sign out.

Without Chromium or Playwright the tests skip, except under CI (env ``CI`` set).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dashboard.browser import TIMEOUT_MS, launch
from watchkeeper.settings import Settings
from watchkeeper.store.state import Store
from watchkeeper.store.tokens import create_token

EVIL = "evil.test"
SILENCE = {"matchers": {"model": "*"}, "duration": "24h", "comment": "from evil.test"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch([f"--host-resolver-rules=MAP {EVIL} 127.0.0.1"])


class Attacker:
    """The other site: serves the pages put in :attr:`pages` at ``http://evil.test:<port>``."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path, "not here").encode()
                self.send_response(200 if self.path in pages else 404)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://{EVIL}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def attacker() -> Iterator[Attacker]:
    site = Attacker()
    yield site
    site.close()


@dataclass
class Service:
    url: str
    port: int
    database_url: str


def _start(module_server: Any, directory: Path, env: dict[str, str]) -> Service:
    url = f"sqlite:///{directory / 'state.db'}"
    srv = module_server(url, env=env)
    return Service(srv.url, srv.port, url)


@pytest.fixture(scope="module")
def open_service(module_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Service:
    """The default: loopback, no tokens."""
    return _start(module_server, tmp_path_factory.mktemp("open"), {})


@pytest.fixture(scope="module")
def secured(module_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Service:
    env = {"WATCHKEEPER_REQUIRE_TOKENS": "true"}
    return _start(module_server, tmp_path_factory.mktemp("secured"), env)


def token(service: Service, *scopes: str) -> str:
    store = Store(Settings(database_url=service.database_url).sqlalchemy_url)
    try:
        return create_token(store, "-".join(scopes), list(scopes))
    finally:
        store.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


def _silences(service: Service) -> list[Any]:
    answer: list[Any] = httpx.get(f"{service.url}/v1/silences", timeout=30).json()["silences"]
    return answer


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_a_page_of_another_site_cannot_silence_every_alert(
    tab: Any, attacker: Attacker, open_service: Service
) -> None:
    target = f"{open_service.url}/v1/silences"
    # a text/plain form can carry JSON: the field name is the text before "=", its value after
    name = json.dumps(SILENCE)[:-1] + ', "x": "'
    attacker.pages["/silence.html"] = f"""<!doctype html><title>cute cats</title>
<iframe name="sink" id="sink"></iframe>
<form id="f" method="post" enctype="text/plain" action="{target}" target="sink">
<input type="hidden" name='{name}' value='"}}'></form>
<script>
(async () => {{
  let answer = "none";
  try {{
    const r = await fetch({json.dumps(target)}, {{method: "POST", mode: "no-cors",
      headers: {{"content-type": "text/plain"}}, body: {json.dumps(json.dumps(SILENCE))}}});
    answer = r.type;
  }} catch (e) {{ answer = "error " + e; }}
  document.getElementById("sink").addEventListener("load", () => {{
    document.title = "sent " + answer;
  }});
  document.getElementById("f").submit();
}})();
</script>"""
    before = len(_silences(open_service))
    tab.goto(attacker.url("/silence.html"))
    tab.wait_for_function("document.title.startsWith('sent')")
    assert tab.title() == "sent opaque"  # the browser did send the fetch
    time.sleep(0.5)
    assert len(_silences(open_service)) == before, _silences(open_service)


def test_a_rebound_name_cannot_read_the_api(tab: Any, open_service: Service) -> None:
    """``evil.test`` points at 127.0.0.1: to the browser, the service is then the attacker's
    own origin, and the page could read every answer — unless the service refuses the name."""
    response = tab.goto(f"http://{EVIL}:{open_service.port}/v1/models")
    assert response.status == 400
    body = json.loads(tab.inner_text("body"))
    assert body["error"]["type"] == "InvalidHost"
    assert "models" not in body
    # the same browser under the service's own name reads it
    assert tab.goto(f"{open_service.url}/v1/models").status == 200


def test_a_page_of_another_site_cannot_sign_the_visitor_in(
    tab: Any, attacker: Attacker, secured: Service
) -> None:
    """Login CSRF: signed in with the attacker's token, the visitor's actions would be the
    attacker's to see."""
    attacker.pages["/login.html"] = f"""<!doctype html><title>win a prize</title>
<form id="f" method="post" action="{secured.url}/ui/login">
<input type="hidden" name="token" value="{token(secured, "admin")}">
<input type="hidden" name="next" value="/ui/alerts"></form>
<script>document.getElementById("f").submit();</script>"""
    posted = f"{secured.url}/ui/login"
    with tab.expect_response(lambda r: r.url == posted and r.request.method == "POST") as answer:
        tab.goto(attacker.url("/login.html"))
    tab.wait_for_load_state()
    assert "wk_session" not in {c["name"] for c in tab.context.cookies(secured.url)}
    tab.goto(f"{secured.url}/ui/alerts")
    assert "/ui/login" in tab.url  # not signed in
    assert answer.value.status == 403


def test_signing_in_and_out_through_the_page(tab: Any, secured: Service) -> None:
    value = token(secured, "read")
    tab.goto(f"{secured.url}/ui/alerts")
    assert "/ui/login" in tab.url
    tab.fill("#token", value)
    with tab.expect_navigation(url=f"{secured.url}/ui/alerts"):
        tab.click("button[type=submit]")
    cookies = {c["name"]: c for c in tab.context.cookies(secured.url)}
    session = cookies["wk_session"]
    assert session["value"] != value and value.split("_", 2)[2] not in session["value"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert tab.evaluate("document.cookie") == ""  # scripts see neither cookie

    with tab.expect_navigation(url=f"{secured.url}/ui/login"):
        tab.click("text=Sign out")
    assert "wk_session" not in {c["name"] for c in tab.context.cookies(secured.url)}
    # the old cookie, put back, opens nothing: the session is gone from the server
    tab.context.add_cookies([{**session, "expires": -1}])
    tab.goto(f"{secured.url}/ui/alerts")
    assert "/ui/login" in tab.url
