"""The state store: one class over SQLAlchemy, the same code on SQLite and PostgreSQL.

Transactions have one shape: ``store.write(fn)`` runs ``fn(conn)`` in a write transaction
(locked, and run again when it lost a race with another process); the callers (``ingest``)
own the bodies and build them from the connection-level steps here (``known_ids``,
``log_batch``, ``claim_batch``, ``add_index_rows``, ``claim_unprocessed``,
``put_bucket_profile``, ``mark_processed``, ``add_counts``). What this process remembers of
the stored state (the ids it has seen, the batches it has indexed) changes only once such a
transaction commits (``on_commit``).

Durability: SQLite runs in WAL mode with ``synchronous=FULL``, so a committed transaction is
on disk; PostgreSQL commits are durable by default. A batch is written to the durable log in
one transaction: a 2xx is sent only after it commits.

Idempotency in two steps. On accept, the batch's prediction ids are checked against the ids
this process has seen (``known_ids``: an in-memory filter, see ``idfilter``; exact lookups
only for the few it may have seen), so a retried batch is answered "duplicates" at once and
stored nothing. Indexing later (the processor, or a label join that needs it first) writes
the batch's rows to the prediction index under its unique key; an id stored meanwhile by
another process is found there (``add_index_rows``), dropped from the batch and moved from
``events_total`` to ``duplicates_total`` in the same transaction. Accepting thus costs no
per-event index write on the request path, and the counters are exact once the log is
indexed.

Several processes may share one database (replicas on PostgreSQL, a tool beside the server on
SQLite): write transactions that read before they write (``Store.write``) lock what they read
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT ... FOR UPDATE``) and run again when they
lost a race on a unique key, so a batch is stored once and applied to the profiles once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import numpy as np
import sqlalchemy as sa

from watchkeeper.errors import InputError, WatchkeeperError
from watchkeeper.store import tables as t
from watchkeeper.store.idfilter import IdFilter
from watchkeeper.store.migrations import migrate

_T = TypeVar("_T")

ID_CHUNK = 500  # ids per IN (...) lookup
DRIFT_REFERENCES = ("training", "previous_window")
UNINDEXED_CHECK = 64  # remembered batches before the processed ones are forgotten
WRITE_OPTION = "watchkeeper_write"  # execution option of a write transaction (see _begin)
RETRIES = 3  # a write that lost a race with another process (unique key) is run again


class NotFoundError(WatchkeeperError):
    """A model, version or other named object does not exist."""

    http_status = 404
    exit_code = 2


class ConflictError(WatchkeeperError):
    """The object exists already."""

    http_status = 409
    exit_code = 2


def create_engine(url: str) -> sa.Engine:
    if url.startswith("postgresql://"):  # psycopg 3 is the driver we ship (extra "postgres")
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # A write transaction (Store.write) takes the database's write lock at its start,
            # so what it reads (stored ids, a batch's state, a profile) stays true until it
            # commits, also against other processes. Otherwise the driver begins a transaction
            # only at the first INSERT/UPDATE/DELETE: the reads before it see no lock.
            if conn.get_execution_options().get(WRITE_OPTION):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    created_at: float
    champion: str | None
    window_seconds: int
    label_horizon_seconds: float
    retention_days: float
    segments: list[str]
    drift_reference: str = "training"  # or "previous_window": each window against the one before


class Store:
    """All reads and writes of service state."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.schema_version = migrate(self.engine)  # the Alembic revision in force
        self._write_lock = threading.RLock()  # one writer at a time: SQLite allows no more
        self._references: dict[tuple[str, str], tuple[Any, Any]] = {}
        # prediction ids this process has seen, per model; ids of batches not indexed yet
        self._seen: dict[str, IdFilter] = {}
        self._unindexed: dict[str, dict[int, set[str]]] = {}
        # batches this process has indexed, by (id, received_at): once retention has emptied
        # the log, SQLite hands out the same ids again
        self._indexed: set[tuple[int, float]] = set()
        self._on_commit: dict[sa.Connection, list[Callable[[], None]]] = {}

    def close(self) -> None:
        self.engine.dispose()

    @overload
    def write(self) -> AbstractContextManager[sa.Connection]: ...

    @overload
    def write(self, fn: Callable[[sa.Connection], _T]) -> _T: ...

    def write(
        self, fn: Callable[[sa.Connection], _T] | None = None
    ) -> _T | AbstractContextManager[sa.Connection]:
        """One write transaction: one writer at a time in this process and, on SQLite, in the
        database from the transaction's start (``BEGIN IMMEDIATE``).

        ``store.write(fn)`` runs ``fn(conn)`` in it and returns what ``fn`` returns; when the
        transaction lost a race with another process (a unique key taken meanwhile, a
        deadlock) it rolls back and ``fn`` runs again in a new one, so ``fn`` must do all its
        reads through ``conn``. ``with store.write() as conn:`` is the same transaction for
        writes that cannot lose such a race, run once."""
        if fn is None:
            return self._transaction()
        return _retrying(self._run, fn)

    def _run(self, fn: Callable[[sa.Connection], _T]) -> _T:
        with self._transaction() as conn:
            return fn(conn)

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        with self._write_lock, self.engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            actions: list[Callable[[], None]] = []
            self._on_commit[conn] = actions
            try:
                with conn.begin():
                    yield conn
            finally:
                del self._on_commit[conn]
            for action in actions:  # committed; still the only writer of this process
                action()

    def on_commit(self, conn: sa.Connection, action: Callable[[], None]) -> None:
        """Run ``action`` once the write transaction of ``conn`` has committed (not at all
        when it rolls back): this process's memory of what is stored follows the database."""
        self._on_commit[conn].append(action)

    # ------------------------------------------------------------------ models
    def create_model(
        self,
        name: str,
        *,
        window_seconds: int,
        label_horizon_seconds: float,
        retention_days: float,
        segments: Sequence[str] = (),
        drift_reference: str = "training",
    ) -> ModelInfo:
        if drift_reference not in DRIFT_REFERENCES:
            raise InputError(
                f"drift_reference {drift_reference!r}: use one of {', '.join(DRIFT_REFERENCES)}"
            )
        row = {
            "name": name,
            "created_at": time.time(),
            "champion": None,
            "window_seconds": int(window_seconds),
            "label_horizon_seconds": float(label_horizon_seconds),
            "retention_days": float(retention_days),
            "segments": list(segments),
            "drift_reference": drift_reference,
        }
        with self.write() as conn:
            if conn.execute(sa.select(t.models.c.name).where(t.models.c.name == name)).first():
                raise ConflictError(f"model {name!r} exists already")
            conn.execute(t.models.insert().values(**row))
        return ModelInfo(**row)  # type: ignore[arg-type]

    def model(self, name: str) -> ModelInfo:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(t.models).where(t.models.c.name == name)).mappings().first()
            )
        if row is None:
            raise NotFoundError(f"model {name!r} is not registered")
        return ModelInfo(**dict(row))

    def models(self) -> list[ModelInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.models).order_by(t.models.c.name)).mappings().all()
        return [ModelInfo(**dict(r)) for r in rows]

    def add_version(
        self,
        model: str,
        version: str,
        *,
        schema: Mapping[str, Any],
        reference_profile: bytes,
        reference_rows: int,
        reference_sample: bytes | None,
        champion: bool = True,
    ) -> None:
        self.model(model)
        with self.write() as conn:
            exists = conn.execute(
                sa.select(t.versions.c.version).where(
                    (t.versions.c.model == model) & (t.versions.c.version == version)
                )
            ).first()
            if exists:
                raise ConflictError(f"model {model!r} has a version {version!r} already")
            conn.execute(
                t.versions.insert().values(
                    model=model,
                    version=version,
                    created_at=time.time(),
                    schema=dict(schema),
                    reference_profile=reference_profile,
                    reference_rows=reference_rows,
                    reference_sample=reference_sample,
                )
            )
            if champion:
                conn.execute(
                    t.models.update().where(t.models.c.name == model).values(champion=version)
                )

    def reference(self, model: str, version: str) -> tuple[Any, Any]:
        """(Schema, reference DatasetProfile) of a version, decoded once: versions never
        change after they are added."""
        from watchkeeper.profiles import DatasetProfile
        from watchkeeper.schema import Schema

        key = (model, version)
        if key not in self._references:
            row = self.version(model, version)
            self._references[key] = (
                Schema.from_dict(row["schema"]),
                DatasetProfile.from_bytes(row["reference_profile"]),
            )
        return self._references[key]

    def versions(self, model: str) -> list[dict[str, Any]]:
        cols = [t.versions.c.version, t.versions.c.created_at, t.versions.c.reference_rows]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(*cols)
                .where(t.versions.c.model == model)
                .order_by(t.versions.c.created_at)
            ).mappings()
            return [dict(r) for r in rows]

    def version(self, model: str, version: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(t.versions).where(
                        (t.versions.c.model == model) & (t.versions.c.version == version)
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFoundError(f"model {model!r} has no version {version!r}")
        return dict(row)

    # ------------------------------------------------------------------ ingest
    def _existing_ids(
        self,
        conn: sa.Connection,
        model: str,
        ids: Sequence[str],
        *,
        other_than: int | None = None,
    ) -> set[str]:
        """The ids of ``ids`` in the prediction index (``other_than``: of another batch)."""
        p = t.predictions.c
        found: set[str] = set()
        for start in range(0, len(ids), ID_CHUNK):
            chunk = list(ids[start : start + ID_CHUNK])
            where = (p.model == model) & p.prediction_id.in_(chunk)
            if other_than is not None:
                where &= p.batch_id != other_than
            found.update(conn.execute(sa.select(p.prediction_id).where(where)).scalars())
        return found

    def _filter(self, conn: sa.Connection, model: str) -> IdFilter:
        """The model's id filter, filled on first use from the index and the unindexed log."""
        seen = self._seen.get(model)
        if seen is not None:
            return seen
        stored = conn.execute(
            sa.select(sa.func.count()).where(t.predictions.c.model == model)
        ).scalar()
        seen = IdFilter(capacity=max(1 << 20, 2 * int(stored or 0)))
        result = conn.execute(
            sa.select(t.predictions.c.prediction_id)
            .where(t.predictions.c.model == model)
            .execution_options(yield_per=50_000)
        )
        for chunk in result.scalars().partitions():
            seen.add(chunk)
        unindexed = self._unindexed.setdefault(model, {})
        b = t.batches.c
        for batch_id, payload in conn.execute(
            sa.select(b.id, b.payload).where((b.model == model) & b.processed.is_(False))
        ):
            ids = _payload_ids(bytes(payload))
            seen.add(ids)
            unindexed[int(batch_id)] = set(ids)
        self._seen[model] = seen
        return seen

    def known_ids(self, conn: sa.Connection, model: str, ids: Sequence[str]) -> set[str]:
        """The ids of ``ids`` stored already (in this process's view, see the module doc)."""
        maybe = self._filter(conn, model).may_contain(ids)
        if not maybe.any():
            return set()
        candidates = [ids[i] for i in np.flatnonzero(maybe).tolist()]
        self._forget_processed(conn, model)
        pending = self._unindexed.get(model, {})
        found = {c for c in candidates if any(c in batch for batch in pending.values())}
        return found | self._existing_ids(conn, model, [c for c in candidates if c not in found])

    def log_batch(
        self, conn: sa.Connection, model: str, version: str, payload: bytes, ids: Sequence[str]
    ) -> int:
        """Add a batch of new ``ids`` to the durable log; return its id. Once the transaction
        commits, this process knows the ids (a retry is answered from memory)."""
        batch_id = int(
            conn.execute(
                t.batches.insert().values(
                    model=model,
                    version=version,
                    received_at=time.time(),
                    events=len(ids),
                    payload=payload,
                    processed=False,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        )
        kept = list(ids)

        def remember() -> None:  # committed: before the next writer checks its own ids
            seen = self._seen.get(model)
            if seen is not None:  # else it is filled from the database on first use
                seen.add(kept)
            unindexed = self._unindexed.setdefault(model, {})
            unindexed[batch_id] = set(kept)
            if len(unindexed) > UNINDEXED_CHECK:  # the processor may be another process
                with self.engine.connect() as other:
                    self._forget_processed(other, model)

        self.on_commit(conn, remember)
        return batch_id

    def _forget_processed(self, conn: sa.Connection, model: str) -> None:
        """Drop the remembered ids of batches processed meanwhile (by any process)."""
        unindexed = self._unindexed.get(model)
        if not unindexed:
            return
        b = t.batches.c
        pending = set(
            conn.execute(
                sa.select(b.id).where((b.model == model) & b.processed.is_(False))
            ).scalars()
        )
        for batch_id in [i for i in unindexed if i not in pending]:
            del unindexed[batch_id]

    def claim_batch(self, conn: sa.Connection, batch_id: int) -> LoggedBatch | None:
        """The logged batch, locked until the transaction ends; None when it is processed (or
        swept) already."""
        b = t.batches.c
        row = conn.execute(
            sa.select(b.model, b.version, b.payload, b.processed, b.received_at)
            .where(b.id == batch_id)
            .with_for_update()
        ).first()
        if row is None or row.processed:
            return None
        received = float(row.received_at)
        return LoggedBatch(
            batch_id,
            row.model,
            row.version,
            bytes(row.payload),
            received,
            indexed=(batch_id, received) in self._indexed,
        )

    def add_index_rows(
        self, conn: sa.Connection, batch: LoggedBatch, rows: Sequence[IndexRow]
    ) -> set[str]:
        """Write a claimed batch's rows to the prediction index; return the ids another batch
        holds there already (stored first by another process): the caller drops them."""
        received = time.time()
        inserted = _insert_ignoring_conflicts(
            conn, [(batch.model, batch.version, batch.id, received, *r) for r in rows]
        )
        taken: set[str] = set()
        if inserted < len(rows):
            ids = [r[0] for r in rows]
            taken = self._existing_ids(conn, batch.model, ids, other_than=batch.id)

        def indexed() -> None:
            self._indexed.add((batch.id, batch.received_at))
            self._unindexed.get(batch.model, {}).pop(batch.id, None)

        self.on_commit(conn, indexed)
        return taken

    def rewrite_batch(
        self, conn: sa.Connection, batch_id: int, payload: bytes, events: int
    ) -> None:
        """Replace a logged batch's payload (e.g. without ids found stored already)."""
        conn.execute(
            t.batches.update()
            .where(t.batches.c.id == batch_id)
            .values(payload=payload, events=events)
        )

    def unindexed_batches(self, model: str) -> list[int]:
        """Ids of the model's logged batches not processed yet, oldest first."""
        b = t.batches.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(b.id, b.received_at)
                .where((b.model == model) & b.processed.is_(False))
                .order_by(b.id)
            )
            return [int(i) for i, at in rows if (int(i), float(at)) not in self._indexed]

    def pending_batches(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.batches)
                .where(t.batches.c.processed.is_(False))
                .order_by(t.batches.c.id)
                .limit(limit)
            ).mappings()
            return [dict(r) for r in rows]

    def pending_events(self) -> int:
        with self.engine.connect() as conn:
            q = sa.select(sa.func.coalesce(sa.func.sum(t.batches.c.events), 0)).where(
                t.batches.c.processed.is_(False)
            )
            return int(conn.execute(q).scalar() or 0)

    def bucket_profile(
        self, conn: sa.Connection, key: Mapping[str, Any], *, lock: bool = False
    ) -> dict[str, Any] | None:
        """The row of a bucket key; ``lock``: held until the transaction ends (PostgreSQL)."""
        bp = t.bucket_profiles.c
        where = sa.and_(*(getattr(bp, k) == v for k, v in key.items()))
        q = sa.select(t.bucket_profiles).where(where)
        row = conn.execute(q.with_for_update() if lock else q).mappings().first()
        return None if row is None else dict(row)

    def claim_unprocessed(self, conn: sa.Connection, batch_ids: Sequence[int]) -> bool:
        """Lock the batches until the transaction ends; False when any of them is processed
        (or processed and swept) already: another processor got there first."""
        b = t.batches.c
        pending = conn.execute(
            sa.select(b.id)
            .where(b.id.in_(list(batch_ids)) & b.processed.is_(False))
            .with_for_update()
        ).scalars()
        return len(set(pending)) == len(set(batch_ids))

    def put_bucket_profile(self, conn: sa.Connection, row: Mapping[str, Any]) -> None:
        """Write a full bucket_profiles row (its key: model, version, segment, granularity,
        bucket), replacing the key's row if there is one."""
        key = {k: row[k] for k in BUCKET_KEY}
        bp = t.bucket_profiles.c
        where = sa.and_(*(getattr(bp, k) == v for k, v in key.items()))
        values = {k: v for k, v in row.items() if k not in key}
        if not conn.execute(t.bucket_profiles.update().where(where).values(**values)).rowcount:
            conn.execute(t.bucket_profiles.insert().values(**row))

    def mark_processed(self, conn: sa.Connection, batch_ids: Sequence[int]) -> None:
        """Mark the batches processed (with their profiles written in the same transaction)."""
        b = t.batches.c
        conn.execute(t.batches.update().where(b.id.in_(list(batch_ids))).values(processed=True))
        applied = set(batch_ids)

        def forget() -> None:
            self._indexed = {key for key in self._indexed if key[0] not in applied}

        self.on_commit(conn, forget)

    def bucket_profiles(
        self,
        model: str,
        *,
        granularity: int,
        start: int | None = None,
        end: int | None = None,
        version: str | None = None,
        segment: str | None = None,
    ) -> list[dict[str, Any]]:
        bp = t.bucket_profiles.c
        q = sa.select(t.bucket_profiles).where(
            (bp.model == model) & (bp.granularity == granularity)
        )
        if start is not None:
            q = q.where(bp.bucket >= start)
        if end is not None:
            q = q.where(bp.bucket < end)
        if version is not None:
            q = q.where(bp.version == version)
        if segment is not None:
            q = q.where(bp.segment == segment)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q.order_by(bp.bucket)).mappings()]

    def quarantine_add(self, model: str, rows: Iterable[dict[str, Any]]) -> int:
        """Keep rejected events with their reasons; return how many were added. A retried
        batch brings its rejected rows again: one whose prediction_id is quarantined already
        with the same reasons is not added (nor counted) twice."""
        now = time.time()
        items = [
            {
                "model": model,
                "received_at": now,
                # a NUL character (a reason to reject) cannot be stored in a text column
                "prediction_id": _storable(r.get("prediction_id")),
                "event": r["event"],
                "reasons": r["reasons"],
            }
            for r in rows
        ]
        if not items:
            return 0
        with self.write() as conn:
            ids = [str(i["prediction_id"]) for i in items if i["prediction_id"]]
            q = t.quarantine.c
            seen: set[tuple[str, str]] = set()
            for start in range(0, len(ids), ID_CHUNK):
                chunk = ids[start : start + ID_CHUNK]
                seen.update(
                    (pid, json.dumps(reasons, sort_keys=True))
                    for pid, reasons in conn.execute(
                        sa.select(q.prediction_id, q.reasons).where(
                            (q.model == model) & q.prediction_id.in_(chunk)
                        )
                    )
                )
            fresh = []
            for item in items:
                key = (str(item["prediction_id"]), json.dumps(item["reasons"], sort_keys=True))
                if not item["prediction_id"] or key not in seen:  # no id: no retry to know
                    fresh.append(item)
                    seen.add(key)
            if fresh:
                conn.execute(t.quarantine.insert(), fresh)
                self.add_counts(conn, model, {"quarantined_total": len(fresh)})
        return len(fresh)

    def quarantine(self, model: str, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.quarantine)
                .where(t.quarantine.c.model == model)
                .order_by(t.quarantine.c.id)
                .limit(limit)
                .offset(offset)
            ).mappings()
            return [dict(r) for r in rows]

    # ------------------------------------------------------------------ counters
    def add_counts(self, conn: sa.Connection, model: str, deltas: Mapping[str, int]) -> None:
        """Add to the model's counters inside a write transaction."""
        for name, delta in deltas.items():
            where = (t.counters.c.model == model) & (t.counters.c.name == name)
            done = conn.execute(
                t.counters.update().where(where).values(value=t.counters.c.value + delta)
            ).rowcount
            if not done:
                conn.execute(t.counters.insert().values(model=model, name=name, value=delta))

    def bump(self, model: str, deltas: Mapping[str, int]) -> None:
        with self.write() as conn:
            self.add_counts(conn, model, deltas)

    def counters(self, model: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.counters.c.name, t.counters.c.value).where(t.counters.c.model == model)
            )
            return {name: int(value) for name, value in rows}

    def last_event_time(self, model: str) -> float | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.max(t.predictions.c.event_time)).where(
                    t.predictions.c.model == model
                )
            ).scalar()
        return None if value is None else float(value)


# A prediction-index row: (prediction_id, event_time, bucket, segment, prediction, score)
IndexRow = tuple[str, float, int, str, str | None, float | None]
BUCKET_KEY = ("model", "version", "segment", "granularity", "bucket")


@dataclass(frozen=True)
class LoggedBatch:
    """A batch of the durable log, claimed in a write transaction (``Store.claim_batch``);
    ``indexed``: this process has written its index rows already."""

    id: int
    model: str
    version: str
    payload: bytes
    received_at: float
    indexed: bool = False


_INDEX_COLUMNS = (
    "model, version, batch_id, received_at, prediction_id, event_time, bucket, segment, "
    "prediction, score"
)


def _insert_ignoring_conflicts(conn: sa.Connection, rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert index rows, skipping ids stored already; return how many were inserted.

    Straight to the driver: SQLAlchemy's per-row parameter handling would cost more than the
    insert itself."""
    if not rows:
        return 0
    if conn.dialect.name == "sqlite":
        sql = (
            f"INSERT OR IGNORE INTO wk_predictions ({_INDEX_COLUMNS}) "
            f"VALUES ({', '.join('?' * 10)})"
        )
    else:
        sql = (
            f"INSERT INTO wk_predictions ({_INDEX_COLUMNS}) VALUES ({', '.join(['%s'] * 10)}) "
            "ON CONFLICT DO NOTHING"
        )
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, rows)
        return int(cursor.rowcount)  # summed over the rows by both drivers; skipped ones: 0
    finally:
        cursor.close()


def _payload_ids(payload: bytes) -> list[str]:
    import pyarrow as pa
    from pyarrow import ipc

    reader = ipc.open_stream(pa.BufferReader(payload))
    ids: list[str] = reader.read_all().column("prediction_id").to_pylist()
    return ids


_RETRY_SQLSTATES = ("40001", "40P01")  # serialization failure, deadlock (PostgreSQL)


def _retrying(
    fn: Callable[[Callable[[sa.Connection], _T]], _T], body: Callable[[sa.Connection], _T]
) -> _T:
    """Run a write transaction again when it lost a race with another process: a unique key
    taken meanwhile (the rerun sees the row and treats it as stored), or a deadlock."""
    for attempt in range(RETRIES):
        try:
            return fn(body)
        except sa.exc.DBAPIError as exc:
            lost = isinstance(exc, sa.exc.IntegrityError) or (
                getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES
            )
            if not lost or attempt == RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _storable(text: Any) -> Any:
    """Text a column can hold: a NUL character (PostgreSQL refuses it) shown as U+FFFD."""
    return text.replace("\x00", "\ufffd") if isinstance(text, str) else text


def check_name(kind: str, name: str) -> str:
    """Model and version names: 1-200 characters of letters, digits, '.', '_' and '-'."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", name or ""):
        raise InputError(
            f"{kind} name {name!r}: use 1-200 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name
