"""Group commit: many requests' events, one transaction (one fsync).

A serving request hands its validated events to :meth:`EventWriter.put`, which appends them
to the spool (``ingest.spool``: one ``os.write``, no fsync) and to an in-memory buffer, and
returns: the request is answered without waiting for the database. A thread of the writer
takes what the buffer holds every ``interval`` seconds (at once when ``batch`` events wait),
commits the events to the durable log in one transaction (the ids the log holds already are
dropped, as on ``POST .../predictions``) and deletes the segment they were spooled in; the
next request spooled starts a new segment.

What is guaranteed: an event answered 2xx is in the log or in the spool. A crashed or killed
process loses nothing (the kernel keeps the written spool); at start-up the segments of
ended processes are replayed into the log. A power loss (or a kernel crash) may lose the
events of the last ``interval`` or so, not yet committed. ``serving_log = "sync"`` commits
each request's events before its answer instead (no spool; one fsync per request).

``POST .../predictions`` answers only once its events are committed (a 2xx means durable):
it hands them to :meth:`EventWriter.commit`, which is not spooled and waits for the commit.
The thread commits at once when such a request waits (no ``interval``): the requests that
arrive while a commit runs join the next one, so N concurrent requests take far fewer than N
commits. Each waiting request gets its own counts (events stored, ids stored already); a
commit failing on the database's or disk's fault fails the waiting requests with the error
(503: the client retries, and a retry of events stored meanwhile finds them stored).

Back-pressure: when ``limit`` events wait (the database is slow or away), a request waits for
room up to ``wait_seconds`` and is then answered 503 (``StoreUnavailable``), its events not
kept; one is never dropped once spooled. A commit that fails on the database's or disk's
fault is tried again (with a growing pause) until it succeeds; a group that fails otherwise
(a value the database refuses) is committed request by request, and the events of a request
that still fails go to the quarantine with the error. :meth:`stop` commits what waits.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from watchkeeper.ingest.accept import log_steps
from watchkeeper.ingest.spool import Record, Segment, orphans, records
from watchkeeper.store.faults import StoreUnavailable, transient, unavailable
from watchkeeper.store.state import Store

log = logging.getLogger("watchkeeper.ingest")
INTERVAL = 0.1  # seconds between commits: the longest an answered event waits uncommitted
BATCH = 2_000  # events waiting that trigger a commit at once
LIMIT = 50_000  # events waiting (buffered or being committed) beyond which requests wait
WAIT_SECONDS = 10.0  # how long a request waits for room before it is answered 503
PAUSE_MAX = 2.0  # seconds: the longest pause between two tries of a failed commit


@dataclass(eq=False)
class _Waiting:
    """A record whose request waits for its commit (``EventWriter.commit``)."""

    record: Record
    done: threading.Event = field(default_factory=threading.Event)
    stored: int = 0
    duplicates: set[str] = field(default_factory=set)
    error: BaseException | None = None

    def result(self) -> tuple[int, set[str]]:
        return self.stored, self.duplicates

    def resolve(self, stored: int, duplicates: set[str]) -> None:
        self.stored, self.duplicates = stored, duplicates
        self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


Item = Record | _Waiting


def _record(item: Item) -> Record:
    return item.record if isinstance(item, _Waiting) else item


class EventWriter:
    """The served events' buffer, spool and committing thread (module docstring)."""

    def __init__(
        self,
        store: Store,
        spool_dir: Path,
        *,
        interval: float = INTERVAL,
        batch: int = BATCH,
        limit: int = LIMIT,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        self.store, self.spool_dir = store, spool_dir
        self.interval, self.batch, self.limit = interval, batch, limit
        self.wait_seconds = wait_seconds
        self._cond = threading.Condition()
        self._records: list[Item] = []
        self._waiting = 0  # events buffered or being committed
        self._segment: Segment | None = None
        self._replay: list[tuple[Segment, list[Record]]] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._running = False
        self.committed = 0  # events stored (duplicates not counted)
        self.commits = 0  # transactions committed

    # ------------------------------------------------------------------ the request's side
    def start(self) -> None:
        """Take over the spool segments of ended processes (replayed first), open this
        process's segment and start the committing thread."""
        for segment in orphans(self.spool_dir):
            found = list(records(segment.path))
            self._replay.append((segment, found))
            self._waiting += sum(r.table.num_rows for r in found)
        if self._replay:
            log.warning("spool: %d segment(s) of an ended process to replay", len(self._replay))
        self._segment = None  # created by the first spooled request
        self._stopping = False
        self._running = True
        self._thread = threading.Thread(target=self._run, name="wk-event-writer", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """Started and not stopping: :meth:`commit` and :meth:`put` take events."""
        return self._running and not self._stopping

    def pending(self) -> int:
        """Events answered but not committed yet."""
        return self._waiting

    def put(self, record: Record) -> None:
        """Keep a request's validated events: spooled when this returns (see the module)."""
        self._enqueue(record, record.encode())

    def commit(self, records: list[Record]) -> list[tuple[int, set[str]]]:
        """Commit a request's validated events (one record per version) with those of the
        requests waiting meanwhile, and return per record (events stored, ids that were
        stored already) once committed; the commit's error when it failed."""
        waiting = [_Waiting(r) for r in records if r.table.num_rows]
        for item in waiting:
            self._enqueue(item, None)
        for item in waiting:
            item.done.wait()
            if item.error is not None:
                raise item.error
        results = iter(waiting)
        return [next(results).result() if r.table.num_rows else (0, set()) for r in records]

    def _enqueue(self, item: Item, data: bytes | None) -> None:
        rows = _record(item).table.num_rows
        with self._cond:
            deadline = time.monotonic() + self.wait_seconds
            while self._waiting >= self.limit and self._waiting > 0:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    raise StoreUnavailable(
                        f"{self._waiting} events wait to be committed to the log (the "
                        "database is slow or unavailable); retry later"
                    )
                self._cond.wait(left)
            if not self._running or self._stopping:
                raise StoreUnavailable("the event writer is not running; retry later")
            if data is not None:
                try:
                    if self._segment is None:
                        self._segment = Segment.create(self.spool_dir)
                    self._segment.append(data)
                except OSError as exc:
                    raise unavailable(exc) or exc from exc
            self._records.append(item)
            self._waiting += rows
            if data is None or len(self._records) == 1 or self._waiting >= self.batch:
                self._cond.notify_all()

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what waits and stop; what cannot be committed stays spooled."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every event put so far is committed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self._waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    # ------------------------------------------------------------------ the thread's side
    def _run(self) -> None:
        try:
            self._work()
        finally:  # a request never waits for a thread that has ended
            with self._cond:
                left = [item for item in self._records if isinstance(item, _Waiting)]
                self._records = [item for item in self._records if not isinstance(item, _Waiting)]
            for item in left:
                item.fail(StoreUnavailable("the event writer stopped; retry later"))
            self._release(left)

    def _work(self) -> None:
        while self._replay:
            segment, found = self._replay[0]
            if not self._commit(list(found), replay=True):
                return  # stopping and the database still away: replayed at the next start
            segment.remove()
            self._replay.pop(0)
            self._release(found)
        while True:
            with self._cond:
                while not self._records and not self._stopping:
                    self._cond.wait()
                if not self._records:
                    break
                if not self._stopping and self._waiting < self.batch and not self._awaited():
                    self._cond.wait(self.interval)  # more requests join this commit
                taken, self._records = self._records, []
                old = self._segment  # deleted once committed; the next put starts a new one
                if old is not None and old.records:
                    self._segment = None
                else:
                    old = None
            done = self._commit(taken, replay=False)
            if done and old is not None:
                old.remove()
            self._release(taken)
            if not done:
                break
        with self._cond:
            if self._segment is not None and not self._segment.records and not self._records:
                self._segment.remove()  # empty: nothing to replay
            elif self._segment is not None:
                self._segment.close()  # what it holds is replayed at the next start
            self._segment = None
            self._running = False

    def _awaited(self) -> bool:
        """A request waits for the commit (``commit``): no pause for more to join."""
        return any(isinstance(item, _Waiting) for item in self._records)

    def _release(self, taken: list[Item] | list[Record] | list[_Waiting]) -> None:
        with self._cond:
            self._waiting -= sum(_record(r).table.num_rows for r in taken)
            self._cond.notify_all()

    def _commit(self, taken: list[Item], *, replay: bool) -> bool:
        """Commit the records in one transaction, trying again while the database or the
        disk is at fault (the waiting requests are answered with the error at the first
        failure); False when stopping meanwhile (the spooled ones stay spooled)."""
        pause = 0.05
        while True:
            try:
                self._write(taken, replay=replay)
                return True
            except Exception as exc:
                if not transient(exc):
                    self._one_by_one(taken, replay=replay)
                    return True
                log.warning("committing %d request(s) failed: %s", len(taken), exc)
                for item in taken:
                    if isinstance(item, _Waiting):
                        item.fail(exc)
                taken = [item for item in taken if not isinstance(item, _Waiting)]
                if not taken:
                    return True
            if self._stopping:
                return False
            time.sleep(pause)
            pause = min(pause * 2, PAUSE_MAX)

    def _write(self, taken: list[Item], *, replay: bool) -> None:
        """One transaction for all the records: one logged batch per model version (an id
        twice among them is stored once, as the first); the waiting requests are answered
        once it has committed."""
        groups: dict[tuple[str, str], list[Record]] = {}
        seen: dict[str, set[str]] = {}
        dropped: dict[str, int] = {}
        kept_ids: list[list[str]] = []  # per item, its ids stored unless stored already
        repeated: list[set[str]] = []  # per item, its ids an earlier item of the group has
        for item in taken:
            record = _record(item)
            table, ids = record.table, record.table.column("prediction_id").to_pylist()
            model_ids = seen.setdefault(record.model, set())
            keep = [x not in model_ids for x in ids]
            model_ids.update(ids)
            flagged = record.flagged
            if not all(keep):
                table = table.filter(pa.array(keep))
                dropped[record.model] = dropped.get(record.model, 0) + keep.count(False)
                repeated.append({x for x, k in zip(ids, keep, strict=True) if not k})
                ids = [x for x, k in zip(ids, keep, strict=True) if k]
                flagged = frozenset(flagged & set(ids))
            else:
                repeated.append(set())
            kept_ids.append(ids)
            if table.num_rows:
                groups.setdefault((record.model, record.version), []).append(
                    Record(record.model, record.version, table, flagged)
                )
        steps = []
        for (model, version), group in groups.items():
            table = pa.concat_tables([r.table for r in group], promote_options="permissive")
            marked = set[str]().union(*(r.flagged for r in group))
            step = log_steps(self.store, model, version, table, marked, count_duplicates=not replay)
            steps.append((model, step))

        def body(conn: sa.Connection) -> tuple[int, dict[str, set[str]]]:
            stored, duplicates = 0, dict[str, set[str]]()
            for model, step in steps:
                n, dupes = step(conn)
                stored += n
                duplicates.setdefault(model, set()).update(dupes)
            for model, n in dropped.items():
                if not replay:
                    self.store.add_counts(conn, model, {"duplicates_total": n})
            return stored, duplicates

        stored, duplicates = self.store.write(body)
        self.committed += stored
        self.commits += 1
        for item, ids, again in zip(taken, kept_ids, repeated, strict=True):
            if isinstance(item, _Waiting):
                known = duplicates.get(item.record.model, set()).intersection(ids)
                item.resolve(len(ids) - len(known), again | known)

    def _one_by_one(self, taken: list[Item], *, replay: bool) -> None:
        """A group the database refused: each request alone; a waiting request refused again
        gets the error, a spooled one goes to the quarantine with it (answered already, so it
        is kept there, not lost)."""
        for item in taken:
            record = _record(item)
            try:
                self._write([item], replay=replay)
            except Exception as exc:
                if isinstance(item, _Waiting):
                    item.fail(exc)
                    continue
                log.exception("served events of %s %s refused", record.model, record.version)
                reason = {"field": "log", "problem": f"the log refused the events: {exc}"}
                rows = [
                    {"index": i, "prediction_id": str(pid), "event": {}, "reasons": [reason]}
                    for i, pid in enumerate(record.table.column("prediction_id").to_pylist())
                ]
                try:
                    self.store.quarantine_add(record.model, rows)
                except Exception:
                    log.exception("quarantining refused served events failed")
