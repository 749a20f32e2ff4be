"""The background processor: logged batches → prediction index, Parquet lake and
time-bucketed profiles.

Exactly once: a batch's Parquet file has a name fixed by the batch (rewriting it is
harmless), and its bucket profiles are merged and the batch marked processed in one
transaction. After a crash, unprocessed batches are simply processed on start. The name holds
the batch's receive time as well as its id: once retention has emptied the log, SQLite hands
out the same ids again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from watchkeeper.ingest.buckets import apply_buckets, profile_buckets
from watchkeeper.ingest.index import index_batches
from watchkeeper.ingest.labels import join_waiting
from watchkeeper.settings import Settings
from watchkeeper.store.dead_letters import dead_letter
from watchkeeper.store.faults import transient
from watchkeeper.store.leases import Leases
from watchkeeper.store.state import Store

log = logging.getLogger("watchkeeper.processor")


def write_durably(files: list[tuple[pa.Table, Path]]) -> None:
    """Write Parquet files, each whole or not at all, and on disk before their batches are
    marked processed (after that, retention may delete a batch: the lake is the events' only
    copy). Each file is synced, then renamed into place; each directory is synced once, after
    its files' renames."""
    directories: dict[Path, None] = {}
    for table, path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        try:
            with tmp.open("wb") as fh:
                pq.write_table(table, fh)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        except BaseException:  # e.g. a full disk: give back what the partial file took
            tmp.unlink(missing_ok=True)
            raise
        directories[path.parent] = None
    for parent in directories:
        directory = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the renames themselves
        finally:
            os.close(directory)


class Processor:
    """A daemon thread that processes the durable log; ``run_once`` for tests and tools."""

    def __init__(self, store: Store, settings: Settings, leases: Leases | None = None) -> None:
        self.store, self.settings = store, settings
        # several replicas: each batch is worked by the replica whose processor leased it
        self.leases = leases
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.batches_processed = 0
        self.events_processed = 0
        self.errors = 0
        self.dead_lettered = 0
        self.ready = True  # in this process: its modules are the server's
        # failures in a row of the batches failing now, by (id, received_at)
        self._failures: dict[tuple[int, float], int] = {}

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="wk-processor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once(raise_errors=False)
            except Exception as exc:  # keep the service up; the batch stays pending, retried
                self.errors += 1
                _log_failure(exc)
                busy = 0
            if not busy:
                self._stop.wait(0.2)

    def run_once(self, limit: int = 20, *, raise_errors: bool = True) -> int:
        """Process up to ``limit`` pending batches; return how many were processed.

        Consecutive batches of one model version are processed together (up to
        ``GROUP_EVENTS`` events): one profile per bucket and one profile write for all of them,
        so a backlog is worked off faster than batches arrive one by one.

        With ``raise_errors=False`` (the loop) a batch that fails is logged, counted in
        ``errors`` and left pending for the next run, and the batches after it are processed:
        one batch that cannot be processed does not hold up the others. A batch that fails
        ``processor_max_attempts`` times in a row is moved to the dead letters
        (``store.dead_letters``) with its error, in either mode; failures of the database or
        the disk (``store.faults.transient``) are not counted against a batch."""
        done = 0
        for group in _groups(self._leased_heads(limit)):
            try:
                done += self._run_group(group, raise_errors=raise_errors)
            finally:
                if self.leases is not None:
                    self.leases.release_batches([b["id"] for b in group])
        return done

    def _leased_heads(self, limit: int) -> list[dict[str, Any]]:
        """The oldest pending batches this processor leased (all of them without leases): of
        several replicas, each takes the next ones no other replica's processor holds."""
        leases = self.leases
        if leases is None or not leases.shared:
            return self.store.pending_batch_heads(limit)
        heads = []
        for batch in self.store.pending_batch_heads(limit * LOOK_AHEAD):
            if leases.try_batch(batch["id"]):
                heads.append(batch)
                if len(heads) == limit:
                    break
        return heads

    def _run_group(self, group: list[dict[str, Any]], *, raise_errors: bool) -> int:
        done = 0
        try:
            done += self._process_group(group)
            self._succeeded(group)
            return done
        except Exception as exc:
            if len(group) == 1:
                self._failed(group[0], exc)
                if raise_errors:
                    raise
                return done
        for batch in group:  # the group failed: each batch on its own
            try:
                done += self._process_group([batch])
                self._succeeded([batch])
            except Exception as exc:
                self._failed(batch, exc)
                if raise_errors:
                    raise
        return done

    def _succeeded(self, group: list[dict[str, Any]]) -> None:
        for batch in group:
            self._failures.pop(_key(batch), None)

    def _failed(self, batch: dict[str, Any], exc: Exception) -> None:
        """Count a failure of the batch; at the bound, move it to the dead letters."""
        self.errors += 1
        if transient(exc):  # not the batch's fault: it is not counted against it
            log.warning("batch %s of model %r: the database or disk is away: %s", *_who(batch), exc)
            return
        log.error("processing batch %s of model %r failed", *_who(batch), exc_info=exc)
        key = _key(batch)
        attempts = self._failures.get(key, 0) + 1
        if attempts < self.settings.processor_max_attempts:
            self._failures[key] = attempts
            return
        self._failures.pop(key, None)
        error = f"{type(exc).__name__}: {exc}"
        if dead_letter(self.store, batch["id"], error=error, attempts=attempts):
            self.dead_lettered += 1
            log.error(
                "batch %s of model %r failed %d times in a row: moved to the dead letters (%s)",
                *_who(batch),
                attempts,
                error,
            )

    def _lake_path(self, batch: dict[str, Any]) -> Path:
        day = datetime.fromtimestamp(batch["received_at"], UTC).strftime("%Y-%m-%d")
        return (
            self.settings.lake_dir
            / f"model={batch['model']}"
            / f"version={batch['version']}"
            / f"date={day}"
            / f"batch-{batch['id']:012d}-{round(batch['received_at'] * 1e6)}.parquet"
        )

    def _process_group(self, group: list[dict[str, Any]]) -> int:
        """Index (one transaction for the group), join waiting labels, write to the lake and
        profile batches of one model version; return how many were processed (0 when another
        processor got there first). Each batch's events are decoded once, when it is indexed."""
        indexed = index_batches(self.store, [batch["id"] for batch in group])
        if not indexed:  # processed meanwhile (another processor)
            return 0
        join_waiting(
            self.store,
            indexed[0].model,
            [i for b in indexed for i in b.table.column("prediction_id").to_pylist()],
        )
        heads = {batch["id"]: batch for batch in group}
        write_durably([(b.table, self._lake_path(heads[b.id])) for b in indexed])
        tables, ids = [b.table for b in indexed], [b.id for b in indexed]
        if not tables:
            return 0
        table = (
            tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")
        )
        model, version = group[0]["model"], group[0]["version"]
        schema, reference = self.store.reference(model, version)
        buckets = profile_buckets(table, schema, reference.spec, self.store.model(model))
        if not apply_buckets(self.store, model, version, ids, buckets):
            return 0  # another processor applied one of them: the rest stay pending
        self.batches_processed += len(ids)
        self.events_processed += table.num_rows
        return len(ids)


class ProcessorProcess:
    """The processor in a child process (``processor: process``, the default of ``serve``).

    Profiling is CPU work in Python and numpy; in the server's process it would take the
    interpreter lock from the request handlers for as long as it runs. In a process of its
    own it works the log on the other core while the server only parses, validates and logs.
    Both share the database; a batch is processed exactly once whoever does it, so stopping or
    killing either at any moment loses nothing. The child dies with the server (Linux's
    parent-death signal, and a check of its parent on every loop) and is restarted when it
    dies alone.
    """

    def __init__(self, settings: Settings) -> None:
        import multiprocessing as mp

        self.settings = settings
        self._ctx = mp.get_context("spawn")
        # shared memory without locks (no semaphores to leak): batches, events, errors, stop,
        # ready (the child has opened the store and loaded what processing imports)
        self._counts = self._ctx.RawArray("q", 5)
        self._stop = threading.Event()
        self._child: Any = None
        self._watch: threading.Thread | None = None
        self.restarts = 0

    @property
    def batches_processed(self) -> int:
        return int(self._counts[0])

    @property
    def events_processed(self) -> int:
        return int(self._counts[1])

    @property
    def errors(self) -> int:
        return int(self._counts[2])

    @property
    def ready(self) -> bool:
        """Whether the child has started: its store open, its modules loaded (until then
        the log waits; a start-up on a busy machine takes seconds of CPU)."""
        return bool(self._counts[4]) and self._child is not None and self._child.is_alive()

    def _spawn(self) -> None:
        import signal

        self._child = self._ctx.Process(
            target=_child_main,
            args=(self.settings, self._counts, os.getpid()),
            name="watchkeeper-processor",
            daemon=True,
        )
        # Ctrl-C reaches the whole process group, but the server stops this child through its
        # stop flag once the work in hand is done. An ignored signal stays ignored across exec,
        # so the child starts deaf to SIGINT and an interrupt during its start-up imports
        # cannot kill it with a traceback. (Only the main thread may change a handler; a
        # restart from the watch thread relies on the child's own SIG_IGN in _child_main.)
        if threading.current_thread() is not threading.main_thread():
            self._child.start()
            return
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self._child.start()
        finally:
            signal.signal(signal.SIGINT, previous)

    def start(self) -> None:
        self._spawn()

        def watch() -> None:
            while not self._stop.wait(1.0):
                if self._child is not None and not self._child.is_alive():
                    log.error(
                        "the processor process exited (%s); restarting it", self._child.exitcode
                    )
                    self.restarts += 1
                    self._spawn()

        self._watch = threading.Thread(target=watch, name="wk-processor-watch", daemon=True)
        self._watch.start()

    def stop(self) -> None:
        self._stop.set()
        self._counts[3] = 1  # the child's stop flag
        if self._watch is not None:
            self._watch.join(timeout=5)
        if self._child is not None:
            self._child.join(timeout=30)
            if self._child.is_alive():
                self._child.kill()
                self._child.join(timeout=5)


def _child_main(settings: Settings, counts: Any, parent: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # see ProcessorProcess._spawn
    _die_with_parent()

    def running() -> bool:
        return not counts[3] and os.getppid() == parent

    store = _open_store(settings, running)
    if store is None:
        return
    leases = Leases(
        settings.sqlalchemy_url,
        f"{settings.replica_id}/processor",
        lease_seconds=settings.lease_seconds,
        exclusive=False,  # on SQLite the server holds the file's lock for its child too
    )
    processor = Processor(store, settings, leases)
    preload()
    counts[4] = 1
    try:
        while running():
            try:
                busy = processor.run_once(raise_errors=False)
            except Exception as exc:  # e.g. the database away for a moment: try again
                processor.errors += 1
                _log_failure(exc)
                busy = 0
            counts[0], counts[1], counts[2] = (
                processor.batches_processed,
                processor.events_processed,
                processor.errors,
            )
            if not busy:
                time.sleep(0.2)
    finally:
        leases.close()
        store.close()


def _open_store(settings: Settings, running: Callable[[], bool]) -> Store | None:
    """The child's store; while the database is away (``transient``: unreachable, its
    connections terminated, locked), tried again every second instead of dying."""
    while running():
        try:
            return Store(settings.sqlalchemy_url)
        except Exception as exc:
            if not transient(exc):
                raise
            log.warning("the processor waits for the database: %s", exc)
            time.sleep(1.0)
    return None


def preload() -> None:
    """Import what the first batch would: pyarrow converts columns to numpy through pandas,
    whose import costs about a second of CPU (several on a busy machine); paid while the
    process starts (the server: before it is ready; the processor: before ``ready``), not
    by the first batch's request or pass."""
    import pandas  # noqa: F401


def _log_failure(exc: Exception) -> None:
    """A pass of the processor failed before reaching a batch."""
    if transient(exc):  # the database or disk is away: it is retried on the next pass
        log.warning("processing waits for the database or disk: %s", exc)
    else:
        log.error("processing failed", exc_info=exc)


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (a SIGKILLed server)."""
    import contextlib
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):  # else the loop's parent check still ends it
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


GROUP_EVENTS = 50_000
LOOK_AHEAD = 4  # replicas: pending batches looked at per batch wanted (others lease some)


def _groups(batches: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Runs of consecutive batches of one model version, up to GROUP_EVENTS events each."""
    groups: list[list[dict[str, Any]]] = []
    for batch in batches:
        last = groups[-1] if groups else None
        if (
            last is not None
            and (last[0]["model"], last[0]["version"]) == (batch["model"], batch["version"])
            and sum(b["events"] for b in last) + batch["events"] <= GROUP_EVENTS
        ):
            last.append(batch)
        else:
            groups.append([batch])
    return groups


def _who(batch: dict[str, Any]) -> tuple[Any, Any]:
    return batch["id"], batch["model"]


def _key(batch: dict[str, Any]) -> tuple[int, float]:
    return int(batch["id"]), float(batch["received_at"])
