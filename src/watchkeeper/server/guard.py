"""What a browser may do to the service: the ``Host`` it names and the ``Origin`` it posts from.

A server on loopback without tokens is reachable by every web page its user opens: a page
can post to it (a ``text/plain`` or form body needs no CORS preflight) and, by pointing a
name of its own at 127.0.0.1 (DNS rebinding), even read from it. Two checks close that, for
every request, before the token check and the routes:

* ``Host`` must be one of the server's names (:attr:`Settings.trusted_hosts`: the loopback
  names and ``public_url``'s host by default, ``allowed_hosts`` when set): a rebound name is
  refused with 400. ``/healthz`` and ``/readyz`` answer any Host: probes name an address
  (a pod's IP), and they hold no data.
* A state-changing request (POST, PUT, PATCH, DELETE) that carries an ``Origin`` (else a
  ``Referer``) must come from a page of this server (same host and port as ``Host``),
  ``public_url`` or ``allowed_origins``: 403 otherwise. Requests without either header (the
  SDK, curl, Prometheus) are not from a page, and pass.

The third lock, a JSON route accepting JSON content types only (no ``text/plain``), is
:func:`watchkeeper.server.bodies.check_body_type`. Both answers use the one error body.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from watchkeeper.server.errors import error_body
from watchkeeper.settings import Settings

CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PROBES = ("/healthz", "/readyz")  # any Host: probes name the address (a pod's IP), not a name
DEFAULT_PORTS = {"http": "80", "https": "443"}


def host_name(host: str) -> str:
    """The name of a ``Host`` header, without its port (IPv6 brackets removed).

    >>> host_name("LocalHost:8700"), host_name("[::1]:8700"), host_name("wk.example.com")
    ('localhost', '::1', 'wk.example.com')
    """
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(name: str, allowed: list[str]) -> bool:
    """``name`` is one of ``allowed``: a name, ``*.example.com`` (its subdomains) or ``*``.

    >>> host_allowed("a.example.com", ["*.example.com"]), host_allowed("evil.test", ["localhost"])
    (True, False)
    """
    for pattern in allowed:
        if pattern in ("*", name):
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower case, without a default port; ``""`` when it
    has none (``null``, a relative or malformed URL).

    >>> origin_of("https://WK.example.com:443/ui/alerts?x=1"), origin_of("null")
    ('https://wk.example.com', '')
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is not None and str(port) != DEFAULT_PORTS[parts.scheme]:
        host += f":{port}"
    return f"{parts.scheme}://{host}"


class BrowserGuard:
    """ASGI middleware: the ``Host`` check, then the ``Origin`` check of changes."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = settings.trusted_hosts
        extra = [*settings.allowed_origins]
        if settings.public_url:
            extra.append(origin_of(settings.public_url))
        self.origins = frozenset(o for o in extra if o)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        name = host_name(host)
        if not host_allowed(name, self.hosts) and scope["path"] not in PROBES:
            shown = ", ".join(self.hosts)
            message = (
                f"Host {host!r} is not a name of this server (it answers to {shown}); "
                "set allowed_hosts to the names clients use (docs/service.md#security)"
                if host
                else "the request has no Host header"
            )
            await _answer(send, 400, "InvalidHost", message)
            return
        if scope["method"] in CHANGES:
            source = headers.get("origin") or headers.get("referer")
            if source is not None and not self._same_site(source, host, scope):
                await _answer(
                    send,
                    403,
                    "ForeignOrigin",
                    f"a {scope['method']} from a page of another site ({source!r}) is refused; "
                    "a page of this server, public_url or allowed_origins may change things",
                )
                return
        await self.app(scope, receive, send)

    def _same_site(self, source: str, host: str, scope: Scope) -> bool:
        origin = origin_of(source)
        if not origin:
            return False  # "null" (a sandboxed or file page) or no origin at all
        if origin in self.origins:
            return True
        scheme = origin.split(":", 1)[0]
        own = origin_of(f"{scheme}://{host}")
        # the scheme may differ behind a TLS proxy; host and port are what the browser named
        return own != "" and origin.split("://", 1)[1] == own.split("://", 1)[1]


async def _answer(send: Send, status: int, kind: str, message: str) -> None:
    body = json.dumps(error_body(status, kind, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
