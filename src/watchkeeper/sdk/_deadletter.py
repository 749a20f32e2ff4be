"""Dead letters: batches the server refused for good, kept on disk with its answer.

The sender moves a batch here instead of retrying it when the server answers a 4xx other than
401, 403, 408 and 429 (413 splits first), or when it keeps answering the same 5xx for that
batch (:class:`Strikes`). Delivery then goes on with the next batch, so one value the server
cannot take never blocks the rest. 502, 503 and 504 mean the server or its proxy is down or
overloaded, not that the batch is bad: those are retried without a bound, like no answer.

The file is ``<spool_dir>/dead-letters/batches.jsonl`` (a subdirectory: the spool adopts the
``*.jsonl`` files of its own directory), one JSON object per batch, appended whole under an
exclusive ``flock`` (several processes may share a spool directory)::

    {"v": 1, "time": "2026-01-02T03:04:05.678Z", "model": "churn", "kind": "actuals",
     "status": 500, "response": <the JSON answer, or its first 300 characters>,
     "attempts": 5, "events": [<each event as it was sent>]}
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ._events import ACTUAL, PREDICTION, Batch, dumps

FORMAT = 1
UNAVAILABLE = frozenset({502, 503, 504})  # the server is down, not the batch bad: no bound
KEPT = frozenset({401, 403, 408, 429})  # a token to fix, or slow down: the events are kept
_KINDS = {PREDICTION: "predictions", ACTUAL: "actuals"}
_CODES = {name: code for code, name in _KINDS.items()}


@dataclass(frozen=True)
class DeadLetter:
    """One batch in the dead-letter file: what the server answered, when, and its events.

    ``kind`` is ``"predictions"`` or ``"actuals"``; ``time`` is ISO 8601 in UTC; ``response``
    the server's JSON answer (or the first 300 characters of a non-JSON one); ``attempts``
    the answers in a row counted toward the bound (1 for a 4xx); ``events`` exactly as sent
    to ``POST /v1/models/{model}/{kind}``.
    """

    time: str
    model: str
    kind: str
    status: int
    response: Any
    attempts: int
    events: list[dict[str, Any]]


class DeadLetterFull(OSError):
    """Writing would take the dead-letter file over its size limit."""


class DeadLetters:
    """The dead-letter file of one spool directory; safe across threads and processes."""

    def __init__(self, path: Path, *, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes

    def append(self, batch: Batch, status: int, response: Any, attempts: int) -> None:
        """Append the batch as one line (flushed and fsynced); raises OSError."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        record = {
            "v": FORMAT,
            "time": now,
            "model": batch.model,
            "kind": _KINDS[batch.kind],
            "status": status,
            "response": response,
            "attempts": attempts,
            "events": batch.events,
        }
        data = (dumps(record) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle, _locked(handle):
            if os.fstat(handle.fileno()).st_size + len(data) > self.max_bytes:
                raise DeadLetterFull(f"{self.path} would exceed spool_max_bytes={self.max_bytes}")
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[DeadLetter]:
        """Every dead letter, oldest first (a line torn by a crash is skipped)."""
        try:
            with open(self.path, "rb") as handle, _locked(handle):
                return _parse(handle.read())
        except FileNotFoundError:
            return []

    def drain(self, take: Callable[[list[DeadLetter]], None]) -> list[DeadLetter]:
        """Hand every dead letter to ``take`` and empty the file once it returned (if it
        raises, the file is left as it was), all under the lock."""
        try:
            handle = open(self.path, "r+b")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return []
        with handle, _locked(handle):
            letters = _parse(handle.read())
            if letters:
                take(letters)
            handle.seek(0)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        return letters


class Strikes:
    """Counts the same 5xx for the same batch, attempt after attempt: the batch has earned the
    dead-letter file after ``attempts`` in a row spanning at least ``seconds``. Only the
    batch at the head of the line can fail, so one record is enough; any other answer for
    that batch (or an outage in between) starts the count again."""

    def __init__(self, attempts: int, seconds: float) -> None:
        self.attempts, self.seconds = attempts, seconds
        self._key: tuple[Any, ...] | None = None
        self._status, self._count, self._since = 0, 0, 0.0

    def hit(self, batch: Batch, status: int) -> int | None:
        """Count a failure; the number of attempts once past the bound, else None."""
        key, now = batch_key(batch), time.monotonic()
        if key != self._key or status != self._status:
            self._key, self._status, self._count, self._since = key, status, 0, now
        self._count += 1
        if self._count < self.attempts or now - self._since < self.seconds:
            return None
        count = self._count
        self.clear()
        return count

    def settled(self, batch: Batch) -> None:
        """The server answered for this batch: its count is over."""
        if self._key is not None and batch_key(batch) == self._key:
            self.clear()

    def clear(self) -> None:
        self._key = None


def batch_key(batch: Batch) -> tuple[Any, ...]:
    """The same events read again (from the spool, after a restart) give the same key."""
    events = batch.events
    first, last = (events[0], events[-1]) if events else ({}, {})
    return (
        batch.path,
        len(events),
        str(first.get("prediction_id")),
        str(last.get("prediction_id")),
    )


def spool_records(letters: list[DeadLetter]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The events of dead letters as spool records (kind, model, event)."""
    for letter in letters:
        kind = _CODES[letter.kind]
        for event in letter.events:
            yield kind, letter.model, event


def _parse(data: bytes) -> list[DeadLetter]:
    letters = []
    for line in data.splitlines():
        try:
            raw = json.loads(line)
            letter = DeadLetter(
                time=str(raw["time"]),
                model=str(raw["model"]),
                kind=str(raw["kind"]),
                status=int(raw["status"]),
                response=raw.get("response"),
                attempts=int(raw.get("attempts", 1)),
                events=[e for e in raw["events"] if isinstance(e, dict)],
            )
        except (ValueError, KeyError, TypeError):
            continue  # torn by a crash mid-write, or not ours
        if letter.kind in _CODES:
            letters.append(letter)
    return letters


@contextlib.contextmanager
def _locked(handle: IO[bytes]) -> Iterator[None]:
    """An exclusive ``flock`` for the block (POSIX; nothing on Windows)."""
    if sys.platform == "win32":
        yield
        return
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
