"""Who is looking: the dashboard's session cookie and its forms' CSRF token.

When the server requires tokens, the dashboard asks for one on a login page, checks it with
the token store and opens a server-side session (``store/sessions.py``): the cookie holds the
session's random id, never the token, in a cookie that scripts cannot read (``HttpOnly``) and
that other sites' pages never send (``SameSite=Strict``); ``Secure`` as well over HTTPS. Each
request reads the session with its token, so signing out, expiry (``session_hours``) and a
revoked token end it at once. A token with the ``read`` scope sees every page; ``admin`` can
also act (silence an alert). The API keeps its ``Authorization: Bearer`` header: the cookie is
only read on dashboard paths.

Every form that changes something carries a CSRF token that a page of another site cannot
know: the session's own once signed in; before that (the login form) and when tokens are off,
the value of a ``wk_csrf`` cookie (double submit). A post without it, or with another, is
refused; ``server/guard.py`` refuses a post from another site's page before that.

When tokens are off (a server on a loopback address), there is no login and everyone may act,
as with the API.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from watchkeeper.store.audit import LOCAL
from watchkeeper.store.sessions import read_session

COOKIE = "wk_session"
CSRF_COOKIE = "wk_csrf"
CSRF_FIELD = "csrf"
LOGIN_PATH = "/ui/login"


@dataclass(frozen=True)
class Viewer:
    """The person at the browser: the scopes of their token (all when tokens are off) and the
    CSRF token their forms carry."""

    scopes: tuple[str, ...]
    signed_in: bool  # False when tokens are off: no login, no logout
    name: str = "dashboard"  # what a silence records as its author
    csrf: str = ""
    new_csrf: bool = False  # the wk_csrf cookie is to be set with this response
    actor: str = LOCAL  # what the audit trail records: the token's name, or "local"

    @property
    def can_act(self) -> bool:
        return "admin" in self.scopes


ALL_SCOPES = ("admin", "ingest", "read")


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def is_dashboard_path(path: str) -> bool:
    """``/`` and everything under ``/ui/``: the paths whose auth is this cookie.

    >>> is_dashboard_path("/"), is_dashboard_path("/ui/models/a"), is_dashboard_path("/v1/models")
    (True, True, False)
    """
    return path == "/" or path.startswith("/ui/")


def tokens_required(request: Request) -> bool:
    return bool(request.app.state.settings.tokens_required)


def cookie_csrf(request: Request) -> tuple[str, bool]:
    """The double-submit CSRF token of this browser (its ``wk_csrf`` cookie), or a new one:
    ``(value, new)``; a new one is set with :func:`remember_csrf`."""
    value = request.cookies.get(CSRF_COOKIE, "")
    if len(value) >= 32:
        return value, False
    return secrets.token_urlsafe(32), True


async def viewer(request: Request) -> Viewer:
    """The viewer of a dashboard request; :class:`LoginRequired` when there is none."""
    if not tokens_required(request):
        csrf, new = cookie_csrf(request)
        return Viewer(ALL_SCOPES, signed_in=False, csrf=csrf, new_csrf=new)
    session_id = request.cookies.get(COOKIE, "")
    store = request.app.state.store
    session = await run_in_threadpool(read_session, store, session_id) if session_id else None
    if session is None or not {"read", "admin"} & set(session.scopes):
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    name = f"dashboard (token {session.token_id})"
    return Viewer(
        session.scopes, signed_in=True, name=name, csrf=session.csrf, actor=session.token_name
    )


def csrf_ok(form: dict[str, str], expected: str) -> bool:
    """The form's CSRF field is ``expected`` (compared in constant time)."""
    given = form.get(CSRF_FIELD, "")
    return bool(given and expected) and hmac.compare_digest(given.encode(), expected.encode())


def login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(safe_next(next_path), safe='')}", 303)


def safe_next(path: str | None) -> str:
    """``path`` when it is a path on this server, else ``/``: a login link cannot send the
    browser to another site.

    >>> safe_next("/ui/models/a?range=7d"), safe_next("//evil.example/x"), safe_next("https://x")
    ('/ui/models/a?range=7d', '/', '/')
    """
    if not path or not path.startswith("/") or path.startswith(("//", "/\\")):
        return "/"
    parts = urlsplit(path)
    if parts.scheme or parts.netloc:
        return "/"
    return path


def _cookie(response: Response, request: Request, name: str, value: str, age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def set_session(response: Response, request: Request, session_id: str, hours: float) -> None:
    _cookie(response, request, COOKIE, session_id, int(hours * 3600))


def remember_csrf(response: Response, request: Request, csrf: str) -> None:
    """Set the ``wk_csrf`` cookie (a double-submit token: a page of another site can neither
    read nor set it)."""
    _cookie(response, request, CSRF_COOKIE, csrf, None)


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
