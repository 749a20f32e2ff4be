"""The spiller: the thread that sheds a backlog from the buffer to the spool.

When the server (or a request in flight) is slower than the logging, the buffer grows past
``max_buffer``. A log call that sees it only wakes this thread, which writes the oldest
events to the spool (as marshalled lines: ``item_lines``) until half of ``max_buffer`` is
left; the caller's thread never writes to disk. Only when the buffer reaches twice
``max_buffer`` (the disk, or this thread, is slower than the logging) does a log call wait,
for the disk and never the network, until there is room again (:meth:`Spiller.make_room`).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

from ._events import Item, item_lines
from ._spool import Spool
from ._stats import Counters

log = logging.getLogger("watchkeeper.sdk")


class Marker(threading.Event):
    """Put in the buffer by ``flush()``; set once everything before it is acknowledged."""


def take_for_spool(buffer: collections.deque[Any], n: int) -> tuple[list[Item], list[Marker]]:
    """Up to ``n`` items from the front of the buffer, and the flush markers among them. The
    markers are handed to the sender only once the items are in the spool: a flush must not
    be answered in between, when the items are neither in memory nor on disk."""
    items: list[Item] = []
    markers: list[Marker] = []
    popleft = buffer.popleft
    while len(items) < n:
        try:
            item = popleft()
        except IndexError:
            break
        if type(item) is tuple:
            items.append(item)
        else:
            markers.append(item)
    return items, markers


class Spiller:
    def __init__(
        self,
        *,
        per_line: int,
        buffer: collections.deque[Any],
        spool: Spool,
        counters: Counters,
        max_buffer: int,
        interval: float,
        hold: Callable[[list[Marker]], None],
    ) -> None:
        self.buffer, self.spool, self.counters = buffer, spool, counters
        self.max_buffer, self.interval, self.hold = max_buffer, interval, hold
        self.per_line = per_line
        self.writing = 0  # > 0 while items are taken from the buffer and not yet in the spool
        self._wake = threading.Event()
        self._room = threading.Event()  # set after each round
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchkeeper-sdk-spill", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wake(self) -> None:
        """A log call found more than ``max_buffer`` events waiting."""
        if not self._wake.is_set():
            self._wake.set()

    def make_room(self) -> None:
        """A log call found twice ``max_buffer`` events waiting: wait until this thread has
        written enough to the spool. Without the thread (stopped, never started) spill here."""
        limit = 2 * self.max_buffer
        while len(self.buffer) >= limit:
            if not self._thread.is_alive():
                self.spill_oldest(len(self.buffer) - self.max_buffer // 2, sync=False)
                return
            self._room.clear()
            self._wake.set()
            self._room.wait(0.1)

    def spill_oldest(self, n: int, *, sync: bool) -> None:
        """Write the oldest ``n`` buffered items to the spool (``sync``: and fsync). What the
        spool cannot take (disk full or unwritable, ``spool_max_bytes``) is dropped and
        counted: the one way an event is lost on the client."""
        self.writing += 1  # only this thread spills (or a log call once it is gone)
        items, markers = take_for_spool(self.buffer, n)
        try:
            lines, bad = item_lines(items, self.per_line)
            try:
                self.spool.append(lines, sync=sync)
            except OSError as exc:
                self.counters.add(dropped=len(items), error=f"buffer full and spool: {exc}")
                log.error(
                    "watchkeeper: dropped %d events: buffer full and spool: %s", len(items), exc
                )
                return
            self.counters.add(spooled=len(items) - bad, dropped=bad)
        finally:
            self.writing -= 1
            self.hold(markers)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                if not self._stop.is_set() and len(self.buffer) > self.max_buffer:
                    self.spill_oldest(len(self.buffer) - self.max_buffer // 2, sync=True)
            except Exception as exc:  # the spiller must outlive any bug, as the sender does
                log.exception("watchkeeper: spilling failed")
                self.counters.add(error=f"spiller: {exc!r}")
            finally:
                self._room.set()
