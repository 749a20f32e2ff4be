"""The notifier contract, routing, and :func:`deliver`: every accepting notifier, retried.

A :class:`Notifier` makes ONE delivery attempt per :meth:`~Notifier.send` and raises
:class:`NotifierError` with a readable reason when it fails. :func:`deliver` is the simple
caller: it sends an alert to every notifier whose routing accepts it, each in its own thread
so a slow or broken one delays no other, retrying each failure with exponential backoff and
jitter. The alert engine may use it directly or call ``send()`` from its own durable outbox.
"""

from __future__ import annotations

import abc
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, ClassVar

from watchkeeper.errors import InputError, WatchkeeperError

if TYPE_CHECKING:
    from watchkeeper.alerts.fields import Fields

log = logging.getLogger("watchkeeper.alerts.delivery")

JITTER = 0.25  # each backoff delay is stretched by a random factor in [1, 1 + JITTER)
MAX_WORKERS = 8


class NotifierError(WatchkeeperError):
    """One delivery attempt failed; the message says why (HTTP status and body, SMTP reply...).

    ``retryable`` is False when another attempt cannot succeed without a change of
    configuration (most 4xx answers, a refused login); ``retry_after`` is the receiver's
    ``Retry-After`` in seconds, when it sent one.
    """

    http_status = 502  # a downstream receiver failed, not the caller
    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        notifier: str = "",
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.notifier = notifier
        self.retryable = retryable
        self.retry_after = retry_after


class Notifier(abc.ABC):
    """A destination for alerts, with its routing: which severities and models it takes.

    ``severities`` and ``models`` of None accept every alert; ``models`` holds exact names or
    shell-style patterns (``churn-*``). ``send_resolved=False`` skips the resolution notices.

    A notifier type is one subclass: its ``type`` (the settings' ``type:``), its ``fields``
    (the settings it takes besides ``type`` and the routing), which of them are ``secrets``
    (those may come from a file: ``<field>_file``), :meth:`from_config` reading them, and
    :meth:`send`. Listing the class in ``channels.NOTIFIER_TYPES`` makes it configurable.
    """

    type: ClassVar[str]
    fields: ClassVar[tuple[str, ...]] = ()
    secrets: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        name: str,
        *,
        severities: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        send_resolved: bool = True,
    ) -> None:
        self.name = name
        self.severities = None if severities is None else frozenset(severities)
        self.models = None if models is None else frozenset(models)
        self.send_resolved = send_resolved

    @classmethod
    def from_config(cls, name: str, f: Fields, routing: Mapping[str, Any]) -> Notifier:
        """The notifier ``name`` of the settings read by ``f`` (a type without fields of its
        own takes the routing only)."""
        return cls(name, **routing)

    def accepts(self, alert: Mapping[str, Any]) -> bool:
        """Whether the routing of this notifier takes ``alert``."""
        if self.severities is not None and alert.get("severity") not in self.severities:
            return False
        if self.models is not None:
            model = str(alert.get("model", ""))
            if not any(fnmatchcase(model, pattern) for pattern in self.models):
                return False
        return self.send_resolved or alert.get("state") != "resolved"

    @abc.abstractmethod
    def send(self, alert: Mapping[str, Any], *, timeout: float = 10.0) -> None:
        """Make one delivery attempt; raise :class:`NotifierError` when it fails."""

    def error(self, reason: str, **kwargs: Any) -> NotifierError:
        """A :class:`NotifierError` whose message starts with this notifier's name and type."""
        return NotifierError(
            f"notifier {self.name!r} ({self.type}): {reason}", notifier=self.name, **kwargs
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of :func:`deliver` for one notifier."""

    name: str
    ok: bool
    attempts: int
    error: str | None  # the last failure's message, None when delivered
    duration: float  # seconds from the first attempt to the outcome, backoff included

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def backoff_delay(
    attempt: int,
    backoff: float,
    *,
    retry_after: float | None = None,
    max_backoff: float = 60.0,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    ``backoff * 2**(attempt-1)``, capped at ``max_backoff``, stretched by a random factor in
    ``[1, 1 + JITTER)`` so that many alerts failing together do not retry in lockstep; never
    less than the receiver's ``Retry-After`` (itself capped at ``max_backoff``).

    >>> backoff_delay(1, 0.5, rng=lambda: 0.0), backoff_delay(3, 0.5, rng=lambda: 0.0)
    (0.5, 2.0)
    >>> backoff_delay(1, 0.5, retry_after=5.0, rng=lambda: 0.0)
    5.0
    """
    delay = min(max_backoff, backoff * 2.0 ** (attempt - 1)) * (1.0 + JITTER * rng())
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_backoff))
    return delay


def deliver(
    notifiers: Iterable[Notifier],
    alert: Mapping[str, Any],
    *,
    attempts: int = 3,
    backoff: float = 0.5,
    sleep: Callable[[float], object] = time.sleep,
    timeout: float = 10.0,
    max_backoff: float = 60.0,
) -> list[DeliveryResult]:
    """Send ``alert`` to every notifier that accepts it; one result per accepting notifier.

    Each notifier gets up to ``attempts`` tries, waiting :func:`backoff_delay` between them;
    a non-retryable :class:`NotifierError` ends its tries at once, and so does any other
    exception (a bug, or an invalid alert, does not heal by retrying). Notifiers run in
    parallel threads, so one failing or hanging never stops or delays the others. Every
    failed attempt is logged on ``watchkeeper.alerts.delivery``.
    """
    if attempts < 1:
        raise InputError(f"deliver: attempts must be at least 1, got {attempts}")
    if backoff < 0 or timeout <= 0:
        raise InputError(
            f"deliver: backoff must be >= 0 and timeout > 0, got {backoff} and {timeout}"
        )
    chosen = [n for n in notifiers if n.accepts(alert)]

    def one(notifier: Notifier) -> DeliveryResult:
        return _deliver_one(
            notifier, alert, attempts, backoff, sleep, timeout=timeout, max_backoff=max_backoff
        )

    if len(chosen) <= 1:
        return [one(n) for n in chosen]
    with ThreadPoolExecutor(min(len(chosen), MAX_WORKERS), "watchkeeper-notify") as pool:
        return list(pool.map(one, chosen))


def _deliver_one(
    notifier: Notifier,
    alert: Mapping[str, Any],
    attempts: int,
    backoff: float,
    sleep: Callable[[float], object],
    *,
    timeout: float,
    max_backoff: float,
) -> DeliveryResult:
    start = time.monotonic()
    alert_id = alert.get("id")
    for attempt in range(1, attempts + 1):
        try:
            notifier.send(alert, timeout=timeout)
        except NotifierError as exc:
            last = str(exc)
            if not exc.retryable or attempt == attempts:
                log.error(
                    "alert %s: %s (attempt %d of %d, giving up)", alert_id, exc, attempt, attempts
                )
                break
            delay = backoff_delay(
                attempt, backoff, retry_after=exc.retry_after, max_backoff=max_backoff
            )
            log.warning(
                "alert %s: %s (attempt %d of %d, retrying in %.2f s)",
                alert_id,
                exc,
                attempt,
                attempts,
                delay,
            )
            sleep(delay)
        except Exception as exc:
            last = f"notifier {notifier.name!r} ({notifier.type}): {type(exc).__name__}: {exc}"
            log.exception("alert %s: %s (not retried)", alert_id, last)
            break
        else:
            return DeliveryResult(notifier.name, True, attempt, None, time.monotonic() - start)
    return DeliveryResult(notifier.name, False, attempt, last, time.monotonic() - start)
