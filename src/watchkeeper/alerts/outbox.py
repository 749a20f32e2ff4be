"""The delivery outbox: one row per (alert transition, notifier), sent by a background loop.

The engine writes the rows in the same transaction as the transition, so a notice is never
lost between the two (a crash after the commit leaves the row pending; it is sent on start).
The loop takes due rows, leases them (``next_attempt_at`` moves past the send's timeout, so
a second loop or a restart does not send them twice meanwhile), makes ONE attempt per row
with :meth:`Notifier.send` — each row in its own thread, so a slow receiver delays no other —
and records the outcome: ``sent``; or, after a failure, ``attempts + 1``, ``last_error`` and
the next attempt after an exponential backoff (the receiver's ``Retry-After`` respected), until
``max_attempts`` or an error that cannot heal by retrying makes it ``failed``. Delivery is at
least once: a crash between a send and its record sends that notice again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

from watchkeeper.alerts.delivery import NotifierError, backoff_delay
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

log = logging.getLogger("watchkeeper.alerts")
BATCH = 32
LEASE_MARGIN = 30.0  # seconds past a send's timeout before a leased row is due again
MAX_WORKERS = 8
IDLE_MAX = 5.0  # seconds at most between two looks of an idle loop (woken at once otherwise)


_d = t.deliveries.c
_firing = t.deliveries.alias("firing")
# a resolution waits while its firing notice to the same notifier is still pending: a
# receiver never gets them in the wrong order
_UNSENT_FIRING = (
    sa.select(_firing.c.id)
    .where(
        (_firing.c.alert_id == _d.alert_id)
        & (_firing.c.notifier == _d.notifier)
        & (_firing.c.transition == "firing")
        & (_firing.c.status == "pending")
    )
    .exists()
)
# the loop's statements, built once (building one costs more than an idle look's query)
CLAIM = (
    sa.select(t.deliveries)
    .where(
        (_d.status == "pending")
        & (_d.next_attempt_at <= sa.bindparam("now"))
        & ~((_d.transition == "resolved") & _UNSENT_FIRING)
    )
    .order_by(_d.next_attempt_at, _d.id)
    .limit(BATCH)
    .with_for_update(skip_locked=True)
)
LEASE = (
    t.deliveries.update()
    .where(_d.id.in_(sa.bindparam("ids", expanding=True)))
    .values(next_attempt_at=sa.bindparam("until"))
)
NEXT_DUE = sa.select(sa.func.min(_d.next_attempt_at)).where(
    (_d.status == "pending") & (_d.next_attempt_at > sa.bindparam("now"))
)


def _row(
    payload: Mapping[str, Any],
    transition: str,
    name: str,
    status: str,
    now: float,
    error: str | None,
) -> dict[str, Any]:
    return {
        "alert_id": payload["id"],
        "transition": transition,
        "notifier": name,
        "status": status,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": error,
        "payload": {**payload, "state": transition},
        "created_at": now,
        "updated_at": now,
        "sent_at": None,
        "duration": None,
    }


def enqueue(
    conn: sa.Connection,
    payload: Mapping[str, Any],
    transition: str,
    names: Iterable[str],
    notifiers: Mapping[str, Any],
    *,
    silenced: bool,
    now: float,
) -> int:
    """Rows for the notifiers among ``names`` whose routing accepts the alert; a name that is
    not configured gets a ``failed`` row saying so. Returns the number of rows."""
    body = {**payload, "state": transition}
    rows = []
    for name in dict.fromkeys(names):
        notifier = notifiers.get(name)
        if notifier is None:
            rows.append(
                _row(body, transition, name, "failed", now, f"notifier {name!r} is not configured")
            )
        elif notifier.accepts(body):
            rows.append(
                _row(body, transition, name, "silenced" if silenced else "pending", now, None)
            )
    if rows:
        conn.execute(t.deliveries.insert(), rows)
    return len(rows)


def enqueue_resolution(
    conn: sa.Connection, payload: Mapping[str, Any], notifiers: Mapping[str, Any], *, now: float
) -> int:
    """The resolution notice, to every notifier that was sent (or is sending) the firing one."""
    d = t.deliveries.c
    names = conn.execute(
        sa.select(d.notifier).where(
            (d.alert_id == payload["id"])
            & (d.transition == "firing")
            & d.status.in_(("pending", "sent", "failed"))
        )
    ).scalars()
    known = [n for n in names if n in notifiers]  # not "not configured" ones
    return enqueue(conn, payload, "resolved", known, notifiers, silenced=False, now=now)


def release(conn: sa.Connection, payload: Mapping[str, Any], *, now: float) -> int:
    """A silenced firing notice is sent after all: its rows become pending with a fresh body."""
    d = t.deliveries.c
    return int(
        conn.execute(
            t.deliveries.update()
            .where(
                (d.alert_id == payload["id"])
                & (d.transition == "firing")
                & (d.status == "silenced")
            )
            .values(
                status="pending",
                payload={**payload, "state": "firing"},
                next_attempt_at=now,
                updated_at=now,
            )
        ).rowcount
    )


class Outbox:
    """The background loop sending due deliveries (``run_once`` for tests and tools)."""

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Any],
        *,
        max_attempts: int = 8,
        backoff: float = 1.0,
        max_backoff: float = 300.0,
        timeout: float = 10.0,
    ) -> None:
        self.store, self.notifiers = store, dict(notifiers)
        self.max_attempts, self.backoff, self.max_backoff = max_attempts, backoff, max_backoff
        self.timeout = timeout
        self.sent = 0
        self.failures = 0
        self.polls = 0  # claims tried: looks for due rows (counted by the tests)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Look for due rows now (the engine calls this after enqueueing)."""
        self._wake.set()

    def start(self, interval: float = 1.0) -> None:
        """Send due rows in a thread: at once when woken (the engine enqueued), when the
        next pending row falls due, and otherwise every ``interval`` seconds, doubling while
        it finds nothing up to :data:`IDLE_MAX` (rows another process enqueued)."""

        def loop() -> None:
            idle = interval
            while not self._stop.is_set():
                now = time.time()
                try:
                    busy = self.run_once(now)
                    due = None if busy else self.next_due(now)
                except Exception:
                    log.exception("the delivery loop failed")
                    busy, due = 0, None
                if busy:
                    idle = interval
                    continue
                wait = idle if due is None else min(idle, max(due - time.time(), 0.0))
                woken = self._wake.wait(wait)
                self._wake.clear()
                idle = interval if woken else min(idle * 2, max(IDLE_MAX, interval))

        self._thread = threading.Thread(target=loop, name="wk-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)
            self._thread = None

    def _claim(self, now: float) -> list[dict[str, Any]]:
        with self.store.write() as conn:
            rows = conn.execute(CLAIM, {"now": now}).mappings().all()
            if rows:
                conn.execute(
                    LEASE,
                    {"ids": [r["id"] for r in rows], "until": now + self.timeout + LEASE_MARGIN},
                )
        return [dict(r) for r in rows]

    def next_due(self, now: float) -> float | None:
        """When the next pending row falls due after ``now`` (None: no such row)."""
        with self.store.engine.connect() as conn:
            due = conn.execute(NEXT_DUE, {"now": now}).scalar()
        return None if due is None else float(due)

    def run_once(self, now: float | None = None) -> int:
        """One attempt for each due row (up to BATCH); returns how many were attempted."""
        self.polls += 1
        rows = self._claim(time.time() if now is None else now)
        if not rows:
            return 0
        with ThreadPoolExecutor(min(len(rows), MAX_WORKERS), "wk-notify") as pool:
            outcomes = list(pool.map(self._attempt, rows))
        with self.store.write() as conn:
            for row, values in zip(rows, outcomes, strict=True):
                conn.execute(
                    t.deliveries.update().where(t.deliveries.c.id == row["id"]).values(**values)
                )
        return len(rows)

    def _attempt(self, row: Mapping[str, Any]) -> dict[str, Any]:
        start = time.time()
        attempts = row["attempts"] + 1
        notifier = self.notifiers.get(row["notifier"])
        retryable, retry_after = True, None
        try:
            if notifier is None:
                retryable = False
                raise NotifierError(f"notifier {row['notifier']!r} is not configured")
            notifier.send(row["payload"], timeout=self.timeout)
        except NotifierError as exc:
            error = str(exc)
            retryable = retryable and exc.retryable
            retry_after = exc.retry_after
        except Exception as exc:  # a bug or a bad alert does not heal by retrying
            error, retryable = f"{type(exc).__name__}: {exc}", False
            log.exception("delivery %s to %r failed", row["id"], row["notifier"])
        else:
            self.sent += 1
            end = time.time()
            return {
                "status": "sent",
                "attempts": attempts,
                "sent_at": end,
                "updated_at": end,
                "duration": end - start,
                "last_error": None,
            }
        self.failures += 1
        end = time.time()
        done = not retryable or attempts >= self.max_attempts
        delay = backoff_delay(
            attempts, self.backoff, retry_after=retry_after, max_backoff=self.max_backoff
        )
        log.warning(
            "alert %s: %s (attempt %d of %d%s)",
            row["alert_id"],
            error,
            attempts,
            self.max_attempts,
            ", giving up" if done else f", next in {delay:.1f} s",
        )
        return {
            "status": "failed" if done else "pending",
            "attempts": attempts,
            "next_attempt_at": end if done else end + delay,
            "updated_at": end,
            "duration": end - start,
            "last_error": error[:2000],
        }
