"""Failed token checks per client address: after ``limit`` failures within ``window`` seconds,
the client's token checks (bearer or dashboard login) answer 429 with ``Retry-After`` until the
oldest of those failures is out of the window, so tokens cannot be guessed at speed.

Kept in memory, per server process: a restart forgets it, which costs a guesser one window.
The client address is uvicorn's (behind a proxy on loopback, the ``X-Forwarded-For`` client).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque

from starlette.requests import Request

from watchkeeper.errors import WatchkeeperError

MAX_CLIENTS = 10_000  # addresses remembered; the least recently failed is forgotten first


def client_address(request: Request) -> str:
    """The address failures are counted for: uvicorn's client (behind a trusted proxy, the
    ``X-Forwarded-For`` client)."""
    return request.client.host if request.client else "unknown"


class TooManyFailures(WatchkeeperError):
    """Too many failed token checks from one address: retry after ``retry_after`` seconds."""

    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FailureLimiter:
    """Failure times per client in a sliding window.

    >>> limiter = FailureLimiter(limit=2, window=60.0)
    >>> limiter.fail("10.0.0.1", now=0.0); limiter.fail("10.0.0.1", now=1.0)
    >>> limiter.retry_after("10.0.0.1", now=2.0), limiter.retry_after("10.0.0.2", now=2.0)
    (58, 0)
    >>> limiter.retry_after("10.0.0.1", now=60.5)
    0
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds the client must wait before its next check; 0: it may go on."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._failures.get(client)
            if times is None:
                return 0
            while times and times[0] <= now - self.window:
                times.popleft()
            if not times:
                del self._failures[client]
                return 0
            if len(times) < self.limit:
                return 0
            return max(1, math.ceil(times[0] + self.window - now))

    def fail(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._failures.pop(client, None) or deque(maxlen=self.limit)
            times.append(now)
            self._failures[client] = times  # most recent last
            while len(self._failures) > MAX_CLIENTS:
                self._failures.popitem(last=False)

    def check(self, client: str) -> None:
        """:class:`TooManyFailures` when the client is over the limit."""
        wait = self.retry_after(client)
        if wait:
            raise TooManyFailures(
                f"too many failed token checks from {client} ({self.limit} within "
                f"{self.window:g} s); retry after {wait} s",
                wait,
            )
