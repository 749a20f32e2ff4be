"""What a request that logs events reads of the stored state, kept in memory between requests.

A batch of prediction events needs its model's row (the champion, the window), whether the
version it names exists, that version's schema and the column its positive-class score goes
to, and the log's backlog. Read from the database for every request, these reads cost more
than a small batch's validation; here each is read once and kept:

* until this process changes them: registering a version, a promotion, a rollback, a
  challenger's start or end and attaching an artifact raise ``Store.generation``
  (``Store.changed``), and an entry read under an older generation is read again, so the
  next request sees the change;
* at most ``SECONDS`` (another process, e.g. a replica or the CLI on the same database, may
  have changed them).

A version's schema and reference never change once it is added (``Store.reference`` keeps
them for good); a version not found is not kept (the next request looks again). The backlog
is the database's count (read at most every ``SECONDS``) plus what this process logged
since: a batch refused for it is refused on a count read afresh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from watchkeeper.ingest.registry import target_classes
from watchkeeper.schema import Schema
from watchkeeper.store.state import ModelInfo, NotFoundError, Store

SECONDS = 1.0  # the longest a change made by another process goes unseen
_T = TypeVar("_T")


@dataclass(frozen=True)
class VersionInfo:
    """A version's schema and the score column of its positive class (binary target)."""

    schema: Schema
    positive_score: str | None


class ModelCache:
    """The cached reads (module docstring); thread-safe."""

    def __init__(self, store: Store, seconds: float = SECONDS) -> None:
        self.store, self.seconds = store, seconds
        self._entries: dict[tuple[str, ...], tuple[int, float, Any]] = {}
        self._lock = threading.Lock()
        self._versions: dict[tuple[str, str], VersionInfo] = {}
        self._logged = 0  # events this process logged since the backlog was read

    def _cached(self, key: tuple[str, ...], read: Callable[[], _T]) -> _T:
        generation, now = self.store.generation, time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] == generation and now - entry[1] < self.seconds:
            value: _T = entry[2]
            return value
        value = read()
        with self._lock:
            self._entries[key] = (generation, now, value)
        return value

    def model(self, model: str) -> ModelInfo:
        """The model's row (its champion); :class:`NotFoundError` when not registered."""
        return self._cached(("model", model), lambda: self.store.model(model))

    def champion(self, model: str) -> str:
        champion = self.model(model).champion
        if champion is None:
            raise NotFoundError(f"model {model!r} has no version yet")
        return champion

    def version(self, model: str, version: str) -> VersionInfo:
        """The version's schema and positive score column; :class:`NotFoundError` when the
        model has no such version."""
        key = (model, version)
        info = self._versions.get(key)
        if info is None:
            schema, reference = self.store.reference(model, version)
            classes = target_classes(schema, reference)
            info = VersionInfo(schema, None if classes is None else f"score.{classes[-1]}")
            with self._lock:
                self._versions[key] = info
        return info

    def has_version(self, model: str, version: str) -> bool:
        try:
            self.version(model, version)
        except NotFoundError:
            return False
        return True

    def pending_events(self, *, fresh: bool = False) -> int:
        """Events logged and not processed yet: the database's count (read at most every
        ``seconds``, or now when ``fresh``) plus what this process logged since."""
        if fresh:
            with self._lock:
                self._entries.pop(("pending",), None)
        before = self._entries.get(("pending",))
        count = self._cached(("pending",), self.store.pending_events)
        with self._lock:
            if self._entries.get(("pending",)) is not before:  # read just now
                self._logged = 0
            return count + self._logged

    def logged(self, events: int) -> None:
        """This process has logged ``events`` more (committed)."""
        with self._lock:
            self._logged += events
