"""The background sender: drains the buffer in batches, retries with backoff, spools.

One daemon thread per client, and a second one, the spiller (``_spiller.py``), that sheds a
backlog beyond ``max_buffer`` to the spool. Each cycle (every ``flush_interval``, or sooner
when ``batch_size`` events wait or ``flush()`` asks): resend the spool first, then the
batches in flight, then the buffer, one batch per model and kind. A network error, a 408,
429 or 5xx backs off exponentially with jitter (``Retry-After`` honoured); after
``spool_after`` failures in a row everything in memory goes to the spool and keeps going
there until the server answers again. A 413 splits the batch. A batch the server refuses for
good (another 4xx but 401/403, or the same 5xx but 502/503/504 past the bound of
:class:`Strikes`) goes to the dead-letter file, counted as rejected, and delivery goes on
with the next batch.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from typing import Any

from ._deadletter import KEPT, UNAVAILABLE, DeadLetters, Strikes, batch_key
from ._events import (
    ACTUAL,
    Batch,
    Item,
    Record,
    encode_body,
    group,
    item_lines,
    line_events,
    parse_spool_lines,
    spool_line,
    to_record,
)
from ._http import NETWORK_ERRORS, Response, Transport
from ._spiller import Marker, Spiller, take_for_spool
from ._spool import Spool
from ._stats import Counters

log = logging.getLogger("watchkeeper.sdk")
MAX_RETRY_AFTER = 300.0
LINE_EVENTS = 100  # at most, per marshalled spool line


class Sender:
    def __init__(
        self,
        *,
        buffer: collections.deque[Any],
        transport: Transport,
        spool: Spool,
        dead_letters: DeadLetters,
        strikes: Strikes,
        counters: Counters,
        batch_size: int,
        flush_interval: float,
        max_buffer: int,
        spool_after: int,
        backoff_base: float,
        max_backoff: float,
    ) -> None:
        self.buffer, self.transport, self.spool, self.counters = buffer, transport, spool, counters
        self.dead_letters, self.strikes = dead_letters, strikes
        self.batch_size, self.flush_interval, self.max_buffer = (
            batch_size,
            flush_interval,
            max_buffer,
        )
        self.spool_after, self.backoff_base, self.max_backoff = (
            spool_after,
            backoff_base,
            max_backoff,
        )
        self._lock = threading.Lock()  # guards _pending and _markers
        self._pending: list[Batch] = []  # taken from the buffer, not yet acknowledged
        self._markers: list[Marker] = []
        self._failures = 0
        self._retry_at = 0.0
        self._urgent = False
        self._settled: tuple[object, int, set[tuple[Any, ...]]] = (None, 0, set())
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchkeeper-sdk", daemon=True)
        self.per_line = min(batch_size, LINE_EVENTS)  # events per marshalled spool line
        self.spiller = Spiller(
            per_line=self.per_line,
            buffer=buffer,
            spool=spool,
            counters=counters,
            max_buffer=max_buffer,
            interval=flush_interval,
            hold=self._hold,
        )

    # ------------------------------------------------------------ called by the client
    def start(self) -> None:
        self._thread.start()
        self.spiller.start()

    def wake(self) -> None:
        """Events wait: send them now, unless backing off from a failure (the next attempt is
        due then, and the spiller keeps the buffer in bounds meanwhile). Waking a thread costs
        the caller microseconds, so a log call must not do it at every event of an outage."""
        if not self._failures and not self._wake.is_set():
            self._wake.set()

    def request_flush(self) -> None:
        """Try now, even while backing off."""
        self._urgent = True
        self._wake.set()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._wake.set()
        self.spiller.stop(timeout)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.transport.close()

    def spill(self) -> None:
        """Move everything in memory (batches in flight, the buffer) to the spool."""
        with self._lock:
            batches, self._pending = self._pending, []
        items, markers = take_for_spool(self.buffer, len(self.buffer) + 1)
        try:
            if not batches and not items:
                return
            lines, bad = _lines([r for b in batches for r in b.records()])
            more, unencodable = item_lines(items, self.per_line)
            self.counters.add(dropped=bad + unencodable)
            try:
                self.spool.append(lines + more)
            except OSError as exc:
                again, repeats = group(to_record(i) for i in items)
                self.counters.add(duplicates=repeats)
                self._keep_in_memory(batches + again, f"spool: {exc}")
                return
            self.counters.add(spooled=len(lines) + len(items) - unencodable)
        finally:
            self._hold(markers)

    def _hold(self, markers: list[Marker]) -> None:
        """Called after a spill: the flush markers taken with its items, resolved with the
        spool; and a flush that waited for the spill may be answered now."""
        with self._lock:
            self._markers.extend(markers)
            waiting = bool(self._markers)
        if waiting:
            self.wake()

    # ------------------------------------------------------------ the thread
    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.flush_interval
            if self._failures and not self._urgent:
                wait = min(wait, max(0.01, self._retry_at - time.monotonic()))
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._cycle()
            except Exception as exc:  # the sender must outlive any bug: report, back off
                log.exception("watchkeeper: sender cycle failed")
                self.counters.add(error=f"sender: {exc!r}")
                self._failed(None, repr(exc))

    def _cycle(self) -> None:
        if self._failures and time.monotonic() < self._retry_at and not self._urgent:
            if self._failures >= self.spool_after:
                self.spill()  # the server is down: keep memory small and events durable
            return
        self._urgent = False
        if not self._send_spool() or not self._send_pending():
            return
        while not self._stop.is_set():
            if len(self.buffer) > self.max_buffer:  # the server is slower than the logging
                self.spiller.wake()
            items = self._take(self.batch_size)
            if items:
                batches, repeats = group(to_record(i) for i in items)
                self.counters.add(duplicates=repeats)
                with self._lock:
                    self._pending.extend(batches)
                if not self._send_pending():
                    return
            elif not self.buffer:
                break
            self._resolve_markers()
        self._resolve_markers()

    def _take(self, n: int) -> list[Item]:
        """Up to ``n`` items to send, stopping after a flush marker."""
        items: list[Item] = []
        popleft = self.buffer.popleft
        while len(items) < n:
            try:
                item = popleft()
            except IndexError:
                break
            if type(item) is tuple:
                items.append(item)
                continue
            with self._lock:
                self._markers.append(item)
            break
        return items

    def _resolve_markers(self) -> None:
        with self._lock:
            if not self._markers or self._pending:
                return
        if self.spiller.writing or self.spool.has_data():  # events neither here nor on disk
            return
        with self._lock:
            markers, self._markers = self._markers, []
        for marker in markers:
            marker.set()

    # ------------------------------------------------------------ sending
    def _send_pending(self) -> bool:
        while True:
            with self._lock:
                if not self._pending:
                    return True
                batch = self._pending[0]
            left = self._deliver(batch)
            with self._lock:
                if self._pending and self._pending[0] is batch:  # else spilled meanwhile
                    self._pending[0:1] = left
            if left:
                return False

    def _send_spool(self) -> bool:
        for segment in self.spool.sendable():
            while True:
                lines, end, torn = self.spool.read(segment, self.batch_size, line_events)
                records, unreadable = parse_spool_lines(lines)
                unreadable += torn
                if unreadable:
                    msg = f"spool: {unreadable} unreadable event(s) in {segment.path.name}"
                    self.counters.add(dropped=unreadable, error=msg)
                    log.warning("watchkeeper: %s (a crash mid-write?)", msg)
                if not lines:
                    self.spool.remove(segment)
                    break
                batches, repeats = group(records)
                self.counters.add(duplicates=repeats)
                # the batches of this read the server answered for: not sent again when a later
                # one fails and the same lines are read again (a dead letter stays one letter)
                at, offset, done = self._settled
                if at is not segment or offset != segment.offset:
                    done = set()
                    self._settled = (segment, segment.offset, done)
                for batch in batches:
                    key = batch_key(batch)
                    if key in done:
                        continue
                    if self._deliver(batch):
                        return False
                    done.add(key)
                segment.offset = end
                self.counters.add(resent=len(records))
        return True

    def _deliver(self, batch: Batch) -> list[Batch]:
        """Send a batch (splitting it on 413); returns what is left to retry later."""
        stack = [batch]
        while stack:
            part = stack.pop()
            outcome = self._post(part)
            if outcome is None:
                continue
            if isinstance(outcome, str):  # "split"
                stack.extend(reversed(part.halves()))
                continue
            reason = f"HTTP {outcome.status}" if outcome.status else outcome.text
            self._failed(outcome.retry_after, reason)
            return [part, *reversed(stack)]
        if self._failures:
            log.warning(
                "watchkeeper: %s reachable again after %d failures",
                self.transport.url,
                self._failures,
            )
        self._failures = 0
        return []

    def _post(self, batch: Batch) -> Response | str | None:
        """None when the batch is settled, "split" on 413, the Response when to retry."""
        body, bad = encode_body(batch)
        if bad:
            self.counters.add(dropped=len(bad), error="an event JSON cannot encode was dropped")
        n = len(batch.events)
        if not n:
            return None
        self.counters.add(sent=n)
        try:
            resp = self.transport.post(batch.path, body)
        except NETWORK_ERRORS as exc:
            self.counters.add(error=f"{batch.path}: {type(exc).__name__}: {exc}")
            self.strikes.clear()  # no answer: an outage, which breaks a row of 5xx
            return Response(0, None, str(exc), None)
        status = resp.status
        if 200 <= status < 300 or (status == 422 and isinstance(resp.body, dict)):
            self.strikes.settled(batch)
            self._account(batch, resp)
            return None
        if status == 413 and n > 1:
            self.strikes.settled(batch)
            return "split"
        if status in KEPT or status in UNAVAILABLE:  # a token to fix, slow down, an outage:
            # nothing is wrong with the events, so they are kept (retried, spooled)
            kept = " (events kept until a token works)" if status in (401, 403) else ""
            self.counters.add(error=f"{batch.path}: HTTP {status}: {resp.text}{kept}")
            self.strikes.clear()
            return resp
        attempts = self.strikes.hit(batch, status) if status >= 500 else 1
        if attempts is None:  # a 5xx, not yet past the bound
            self.counters.add(error=f"{batch.path}: HTTP {status}: {resp.text}")
            return resp
        self._dead_letter(batch, resp, attempts)
        return None

    def _dead_letter(self, batch: Batch, resp: Response, attempts: int) -> None:
        """Settle a batch the server refuses for good: into the dead-letter file, logged once."""
        n = len(batch.events)
        msg = f"{batch.path}: HTTP {resp.status}: {resp.text}"
        response = resp.body if resp.body is not None else resp.text
        try:
            self.dead_letters.append(batch, resp.status, response, attempts)
        except OSError as exc:
            msg = f"{msg} (and the dead-letter file: {exc})"
            self.counters.add(dropped=n, error=msg)
            log.error("watchkeeper: %d events dropped after %d attempt(s): %s", n, attempts, msg)
            return
        self.counters.add(rejected=n, dead_lettered=n, dead_letter_batches=1, error=msg)
        where = self.dead_letters.path
        log.error("watchkeeper: %d events refused, moved to %s: %s", n, where, msg)

    def _account(self, batch: Batch, resp: Response) -> None:
        body: dict[str, Any] = resp.body if isinstance(resp.body, dict) else {}
        n = len(batch.events)

        def count(*keys: str) -> int:
            return sum(v for k in keys if isinstance(v := body.get(k), int))

        known = "matched" in body if batch.kind == ACTUAL else "accepted" in body
        if not known:  # not the ingest answer (a proxy, a framework error): all or nothing
            acked, rejected = (0, n) if resp.status == 422 else (n, 0)
        elif batch.kind == ACTUAL:
            acked, rejected = count("matched", "unmatched", "late"), 0
        else:
            acked, rejected = count("accepted"), count("rejected")
        error = None
        if rejected:
            first = (body.get("errors") or [body.get("detail") or resp.text])[0]
            error = f"{batch.path}: {rejected} events rejected, e.g. {first}"
            log.warning("watchkeeper: %s", error)
        self.counters.add(
            acknowledged=acked, duplicates=count("duplicates"), rejected=rejected, error=error
        )

    def _failed(self, retry_after: float | None, reason: str) -> None:
        self._failures += 1
        self.counters.add(retries=1)
        delay = min(self.max_backoff, self.backoff_base * 2 ** min(self._failures - 1, 30))
        delay *= random.uniform(0.5, 1.0)
        if retry_after:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        self._retry_at = time.monotonic() + delay
        if self._failures == 1:
            log.warning(
                "watchkeeper: cannot deliver events to %s (%s); retrying in the background,"
                " spooling to %s after %d failures",
                self.transport.url,
                reason,
                self.spool.directory,
                self.spool_after,
            )
        if self._failures >= self.spool_after:
            self.spill()

    def _keep_in_memory(self, batches: list[Batch], error: str) -> None:
        """The spool failed: keep up to ``max_buffer`` events in memory, drop the oldest."""
        total, keep = 0, []
        for batch in reversed(batches):
            total += len(batch.events)
            if total > self.max_buffer:
                break
            keep.append(batch)
        dropped = sum(len(b.events) for b in batches) - sum(len(b.events) for b in keep)
        with self._lock:
            self._pending[0:0] = reversed(keep)
        self.counters.add(dropped=dropped, error=error)
        if dropped:
            log.error("watchkeeper: dropped %d events: %s", dropped, error)


def _lines(records: list[Record]) -> tuple[list[bytes], int]:
    lines, bad = [], 0
    for record in records:
        try:
            lines.append(spool_line(record))
        except (TypeError, ValueError):
            bad += 1
    return lines, bad
