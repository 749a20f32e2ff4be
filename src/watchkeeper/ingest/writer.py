"""Group commit of the served events: many requests, one transaction (one fsync).

A serving request hands its validated events to :meth:`EventWriter.put`, which appends them
to the spool (``ingest.spool``: one ``os.write``, no fsync) and to an in-memory buffer, and
returns: the request is answered without waiting for the database. A thread of the writer
takes what the buffer holds every ``interval`` seconds (at once when ``batch`` events wait),
starts a new spool segment, commits the events to the durable log in one transaction (the
ids the log holds already are dropped, as on ``POST .../predictions``) and deletes the
segment they were spooled in.

What is guaranteed: an event answered 2xx is in the log or in the spool. A crashed or killed
process loses nothing (the kernel keeps the written spool); at start-up the segments of
ended processes are replayed into the log. A power loss (or a kernel crash) may lose the
events of the last ``interval`` or so, not yet committed. ``serving_log = "sync"`` commits
each request's events before its answer instead (no spool; one fsync per request).

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
        self._records: list[Record] = []
        self._waiting = 0  # events buffered or being committed
        self._segment: Segment | None = None
        self._replay: list[tuple[Segment, list[Record]]] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.committed = 0  # events stored (duplicates not counted)

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
        self._segment = Segment.create(self.spool_dir)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="wk-event-writer", daemon=True)
        self._thread.start()

    def pending(self) -> int:
        """Events answered but not committed yet."""
        return self._waiting

    def put(self, record: Record) -> None:
        """Keep a request's validated events: spooled when this returns (see the module)."""
        data = record.encode()
        rows = record.table.num_rows
        with self._cond:
            deadline = time.monotonic() + self.wait_seconds
            while self._waiting >= self.limit and self._waiting > 0:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    raise StoreUnavailable(
                        f"{self._waiting} served events wait to be committed to the log (the "
                        "database is slow or unavailable); retry later"
                    )
                self._cond.wait(left)
            if self._segment is None or self._stopping:
                raise StoreUnavailable("the event writer is not running; retry later")
            try:
                self._segment.append(data)
            except OSError as exc:
                raise unavailable(exc) or exc from exc
            self._records.append(record)
            self._waiting += rows
            if len(self._records) == 1 or self._waiting >= self.batch:
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
        while self._replay:
            segment, found = self._replay[0]
            if not self._commit(found, replay=True):
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
                if not self._stopping and self._waiting < self.batch:
                    self._cond.wait(self.interval)  # more requests join this commit
                taken, self._records = self._records, []
                old = self._segment
                try:
                    self._segment = Segment.create(self.spool_dir)
                except OSError:  # a full disk: the old one stays, replay is idempotent
                    log.warning("spool: cannot start a new segment", exc_info=True)
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

    def _release(self, taken: list[Record]) -> None:
        with self._cond:
            self._waiting -= sum(r.table.num_rows for r in taken)
            self._cond.notify_all()

    def _commit(self, taken: list[Record], *, replay: bool) -> bool:
        """Commit the records in one transaction, trying again while the database or the
        disk is at fault; False when stopping meanwhile (they stay spooled)."""
        pause = 0.05
        while True:
            try:
                self.committed += self._write(taken, replay=replay)
                return True
            except Exception as exc:
                if not transient(exc):
                    self._one_by_one(taken, replay=replay)
                    return True
                log.warning("committing %d served request(s) failed: %s", len(taken), exc)
            if self._stopping:
                return False
            time.sleep(pause)
            pause = min(pause * 2, PAUSE_MAX)

    def _write(self, taken: list[Record], *, replay: bool) -> int:
        """One transaction for all the records: one logged batch per model version (an id
        twice among them is stored once, as the first)."""
        groups: dict[tuple[str, str], list[Record]] = {}
        seen: dict[str, set[str]] = {}
        dropped: dict[str, int] = {}
        for record in taken:
            table, ids = record.table, record.table.column("prediction_id").to_pylist()
            model_ids = seen.setdefault(record.model, set())
            keep = [x not in model_ids for x in ids]
            model_ids.update(ids)
            if not all(keep):
                table = table.filter(pa.array(keep))
                dropped[record.model] = dropped.get(record.model, 0) + keep.count(False)
            if table.num_rows:
                groups.setdefault((record.model, record.version), []).append(
                    Record(record.model, record.version, table, record.flagged)
                )
        steps = []
        for (model, version), group in groups.items():
            table = pa.concat_tables([r.table for r in group], promote_options="permissive")
            flagged = set().union(*(r.flagged for r in group))
            steps.append(
                log_steps(self.store, model, version, table, flagged, count_duplicates=not replay)
            )

        def body(conn: sa.Connection) -> int:
            stored = sum(step(conn)[0] for step in steps)
            for model, n in dropped.items():
                if not replay:
                    self.store.add_counts(conn, model, {"duplicates_total": n})
            return stored

        return self.store.write(body)

    def _one_by_one(self, taken: list[Record], *, replay: bool) -> None:
        """A group the database refused: each request alone; one refused again goes to the
        quarantine with the error (answered already, so it is kept there, not lost)."""
        for record in taken:
            try:
                self.committed += self._write([record], replay=replay)
            except Exception as exc:
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
