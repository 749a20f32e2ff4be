"""Real receivers on loopback for notifier tests: an HTTP server and an SMTP server.

* :class:`HttpReceiver` — a threaded ``http.server`` on 127.0.0.1 that records every request
  (method, path, headers, body, the status it answered) and can be told to fail the next N
  requests (``fail_next``), to answer slowly (``delay``), or to be down (``stop``/``start``,
  same port).
* :class:`SmtpReceiver` — an aiosmtpd ``Controller`` on a free port that records every message
  (parsed with ``email.policy.default``), optionally checks a login, and can be told to
  answer the next N messages with a temporary failure.

The pytest fixtures (``webhook_receiver``, ``make_http_receiver``, ``smtp_receiver``,
``make_smtp_receiver``) are defined here; ``tests/conftest.py`` registers this module as a
plugin, so every test can ask for them.
"""

from __future__ import annotations

import collections
import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait(cond: threading.Condition, ready: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    with cond:
        while not ready():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            cond.wait(left)
    return True


# --------------------------------------------------------------------------------------- HTTP
@dataclass(frozen=True)
class Request:
    """One request an :class:`HttpReceiver` got, and the status it answered."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int
    received_at: float

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """A threaded HTTP server on loopback that records requests; see the module docstring.

    Every request is recorded in :attr:`requests` *before* it is answered, so a client that
    got its answer finds its request there. :meth:`wait_for` waits for *delivered* requests
    (answered 2xx).
    """

    def __init__(
        self,
        *,
        path: str = "/hook",
        status: int = 200,
        body: bytes | str = b"ok",
        content_type: str = "text/plain",
    ) -> None:
        self.path = path
        self.status, self.content_type = status, content_type
        self.body = body.encode() if isinstance(body, str) else body
        self.delay = 0.0  # seconds to wait before answering
        self.requests: list[Request] = []
        self.port = 0
        self._failures: collections.deque[tuple[int, bytes, dict[str, str]]] = collections.deque()
        self._cond = threading.Condition()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"

    @property
    def delivered(self) -> list[Request]:
        with self._cond:
            return [r for r in self.requests if 200 <= r.status < 300]

    def fail_next(
        self,
        n: int,
        status: int = 500,
        body: bytes | str = b"receiver failure",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``n`` requests with ``status`` (and ``body``, ``headers``)."""
        data = body.encode() if isinstance(body, str) else body
        with self._cond:
            self._failures.extend([(status, data, dict(headers or {}))] * n)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Request]:
        """The delivered requests, once there are at least ``count``; AssertionError after
        ``timeout`` seconds, listing what did arrive."""
        if not _wait(self._cond, lambda: len(self.delivered) >= count, timeout):
            seen = [(r.method, r.path, r.status) for r in self.requests]
            raise AssertionError(f"expected {count} delivered request(s) in {timeout} s: {seen}")
        return self.delivered

    def clear(self) -> None:
        with self._cond:
            self.requests.clear()
            self._failures.clear()

    def start(self) -> HttpReceiver:
        """Listen (again): on a free port the first time, on the same port after :meth:`stop`."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, data, extra, ctype = receiver._answer()
                request = Request(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    status,
                    time.time(),
                )
                with receiver._cond:
                    receiver.requests.append(request)
                    receiver._cond.notify_all()
                if receiver.delay:
                    receiver._release.wait(receiver.delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in extra.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout): nothing to answer
                    pass

            do_POST = do_PUT = do_GET = _handle

        self._release.clear()
        server = ThreadingHTTPServer((HOST, self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _answer(self) -> tuple[int, bytes, dict[str, str], str]:
        with self._cond:
            if self._failures:
                status, data, extra = self._failures.popleft()
                return status, data, extra, "text/plain"
        return self.status, self.body, {}, self.content_type

    def stop(self) -> None:
        """Stop listening: connections to :attr:`url` are refused until :meth:`start`."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


# --------------------------------------------------------------------------------------- SMTP
@dataclass(frozen=True)
class Mail:
    """One message an :class:`SmtpReceiver` accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None  # the user that authenticated, if any
    raw: bytes = field(repr=False)


class SmtpReceiver:
    """An aiosmtpd SMTP server on loopback that records messages; see the module docstring.

    With ``auth=(user, password)`` it offers AUTH (without TLS: loopback only) and refuses
    any other credentials with ``535``; mail without a login is still accepted, and
    :attr:`Mail.login` tells which it was.
    """

    def __init__(self, *, auth: tuple[str, str] | None = None) -> None:
        self.host = HOST
        self.port = 0
        self.auth = auth
        self.mails: list[Mail] = []
        self._failures: collections.deque[str] = collections.deque()
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[EmailMessage]:
        with self._cond:
            return [m.message for m in self.mails]

    def fail_next(self, n: int, reply: str = "451 4.3.0 Temporary failure, try again") -> None:
        """Answer the DATA of the next ``n`` messages with ``reply`` (not recorded)."""
        with self._cond:
            self._failures.extend([reply] * n)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        if not _wait(self._cond, lambda: len(self.mails) >= count, timeout):
            raise AssertionError(
                f"expected {count} message(s) in {timeout} s, got {len(self.mails)}"
            )
        return self.messages

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        with self._cond:
            if self._failures:
                return self._failures.popleft()
        raw = bytes(envelope.original_content or envelope.content or b"")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if session.authenticated else None
        with self._cond:
            self.mails.append(
                Mail(str(envelope.mail_from), list(envelope.rcpt_tos), message, login, raw)
            )
            self._cond.notify_all()
        return "250 Message accepted for delivery"

    def _authenticate(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            self.auth is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self.auth
        )
        return AuthResult(success=ok, handled=False, auth_data=data)  # failure: 535

    def start(self) -> SmtpReceiver:
        kwargs: dict[str, Any] = {}
        if self.auth is not None:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        self.port = self.port or free_port()
        self._controller = Controller(self, hostname=self.host, port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture
def make_http_receiver() -> Iterator[Callable[..., HttpReceiver]]:
    """``make_http_receiver(**kwargs)``: a started :class:`HttpReceiver`, stopped after the test."""
    started: list[HttpReceiver] = []

    def make(**kwargs: Any) -> HttpReceiver:
        started.append(HttpReceiver(**kwargs).start())
        return started[-1]

    yield make
    for receiver in started:
        receiver.stop()


@pytest.fixture
def webhook_receiver(make_http_receiver: Callable[..., HttpReceiver]) -> HttpReceiver:
    """A started :class:`HttpReceiver` answering ``200 ok`` at ``.url`` (path ``/hook``)."""
    return make_http_receiver()


@pytest.fixture
def make_smtp_receiver() -> Iterator[Callable[..., SmtpReceiver]]:
    """``make_smtp_receiver(auth=None)``: a started :class:`SmtpReceiver`, stopped after."""
    started: list[SmtpReceiver] = []

    def make(**kwargs: Any) -> SmtpReceiver:
        started.append(SmtpReceiver(**kwargs).start())
        return started[-1]

    yield make
    for receiver in started:
        receiver.stop()


@pytest.fixture
def smtp_receiver(make_smtp_receiver: Callable[..., SmtpReceiver]) -> SmtpReceiver:
    """A started :class:`SmtpReceiver` at ``.host``/``.port``, recording ``.messages``."""
    return make_smtp_receiver()
