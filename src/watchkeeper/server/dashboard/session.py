"""Who is looking: the dashboard's session cookie.

When the server requires tokens, the dashboard asks for one on a login page, checks it with
the token store and keeps it in a cookie that scripts cannot read (``HttpOnly``) and that
other sites' pages never send (``SameSite=Strict``); ``Secure`` as well over HTTPS. Each
request checks the token again, so a revoked token ends its sessions at once. A token with the
``read`` scope sees every page; ``admin`` can also act (silence an alert). The API keeps its
``Authorization: Bearer`` header: the cookie is only read on dashboard paths.

When tokens are off (a server on a loopback address), there is no login and everyone may act,
as with the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from watchkeeper.store.tokens import check_token

COOKIE = "wk_session"
LOGIN_PATH = "/ui/login"


@dataclass(frozen=True)
class Viewer:
    """The person at the browser: the scopes of their token (all when tokens are off)."""

    scopes: tuple[str, ...]
    signed_in: bool  # False when tokens are off: no login, no logout
    name: str = "dashboard"  # what a silence records as its author

    @property
    def can_act(self) -> bool:
        return "admin" in self.scopes


OPEN_VIEWER = Viewer(("admin", "ingest", "read"), signed_in=False)


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


async def viewer(request: Request) -> Viewer:
    """The viewer of a dashboard request; :class:`LoginRequired` when there is none."""
    if not tokens_required(request):
        return OPEN_VIEWER
    token = request.cookies.get(COOKIE, "")
    scopes = await run_in_threadpool(check_token, request.app.state.store, token) if token else None
    if not scopes or not {"read", "admin"} & set(scopes):
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    token_id = token.split("_", 2)[1]  # wk_<id>_<secret>: the id is not secret
    return Viewer(tuple(sorted(scopes)), signed_in=True, name=f"dashboard (token {token_id})")


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


def set_session(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def same_origin(request: Request) -> bool:
    """A form post came from a page of this server (``Origin``, else ``Referer``, matches).

    The cookie is ``SameSite=Strict`` already; this is the second lock on the door."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return True  # not a browser cross-site request: those always carry Origin on POST
    parts = urlsplit(source)
    return parts.netloc == request.headers.get("host", "") and parts.scheme in ("http", "https")
