"""A keep-alive JSON POST over ``http.client`` (standard library only)."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

NETWORK_ERRORS = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # the decoded JSON, or None
    text: str  # the first 300 characters, for error messages
    retry_after: float | None
    data: bytes = b""  # the raw body


def _user_agent() -> str:
    try:
        from importlib.metadata import version

        return f"watchkeeper-sdk/{version('watchkeeper')}"
    except Exception:  # not installed as a distribution: still send a name
        return "watchkeeper-sdk"


class Transport:
    """One persistent connection to the server; used by the sender thread only."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self.url = url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http://host[:port][/prefix] or https://..., got {url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", "User-Agent": _user_agent()}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        self._conn = kind(self.host, self.port, timeout=self.timeout)
        return self._conn

    def post(self, path: str, body: bytes) -> Response:
        """POST ``body``; raises one of NETWORK_ERRORS when no HTTP response came back."""
        return self.request("POST", path, body)

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> Response:
        """One request; raises one of NETWORK_ERRORS when no HTTP response came back."""
        headers = self.headers if content_type is None else {
            **self.headers, "Content-Type": content_type
        }  # fmt: skip
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._conn or self._connect()
            try:
                conn.request(method, self.prefix + path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
            except NETWORK_ERRORS:
                self.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle keep-alive connection: reconnect once
                raise
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
            return Response(
                resp.status,
                _json(data),
                data[:300].decode(errors="replace"),
                _seconds(resp.getheader("Retry-After")),
                data,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: rare from our server; fall back to our own backoff
        return None
