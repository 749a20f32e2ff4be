"""The durable log, the prediction index and the bucket profiles: the connection-level steps
the ingest path builds its write transactions from (``Store.write(fn)``), and their reads.

``DurableLog`` is a part of :class:`watchkeeper.store.state.Store`; what this process
remembers of the log (the ids it has seen, the batches not indexed yet, the batches it has
indexed) changes only once a transaction commits (``Store.on_commit``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from watchkeeper.store import tables as t
from watchkeeper.store.idfilter import IdFilter

ID_CHUNK = 500  # ids per IN (...) lookup
UNINDEXED_CHECK = 64  # remembered batches before the processed ones are forgotten


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


def _insert_ignoring_conflicts(
    conn: sa.Connection, rows: Sequence[tuple[Any, ...]]
) -> tuple[int, set[tuple[int, str]] | None]:
    """Insert index rows in bulk, skipping ids stored already; return how many were inserted
    and, on PostgreSQL, the (batch id, prediction id) of the rows skipped because another
    batch holds the id (None on SQLite: the caller looks them up).

    Straight to the driver: SQLAlchemy's per-row parameter handling would cost more than the
    insert itself. SQLite: one prepared statement run over the rows (``executemany``).
    PostgreSQL: the rows are streamed with ``COPY`` into a temporary table of this connection
    (emptied at commit), moved in one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` and,
    when some were skipped, joined to the index once to find whose they are."""
    if not rows:
        return 0, set()
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "sqlite":
            cursor.executemany(
                f"INSERT OR IGNORE INTO wk_predictions ({_INDEX_COLUMNS}) "
                f"VALUES ({', '.join('?' * 10)})",
                rows,
            )
            return int(cursor.rowcount), None  # summed over the rows; skipped ones: 0
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS wk_index_load (model text, version text, "
            "batch_id bigint, received_at double precision, prediction_id text, "
            "event_time double precision, bucket bigint, segment text, prediction text, "
            "score double precision) ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f"COPY wk_index_load ({_INDEX_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO wk_predictions ({_INDEX_COLUMNS}) SELECT {_INDEX_COLUMNS} "
            "FROM wk_index_load ON CONFLICT DO NOTHING"
        )
        inserted = int(cursor.rowcount)
        taken: set[tuple[int, str]] = set()
        if inserted < len(rows):
            cursor.execute(
                "SELECT l.batch_id, l.prediction_id FROM wk_index_load l JOIN wk_predictions p "
                "ON p.model = l.model AND p.prediction_id = l.prediction_id "
                "WHERE p.batch_id <> l.batch_id"
            )
            taken = {(int(b), str(i)) for b, i in cursor.fetchall()}
        cursor.execute("TRUNCATE wk_index_load")  # a second load in this transaction
        return inserted, taken
    finally:
        cursor.close()


def _payload_ids(payload: bytes) -> list[str]:
    import pyarrow as pa
    from pyarrow import ipc

    reader = ipc.open_stream(pa.BufferReader(payload))
    ids: list[str] = reader.read_all().column("prediction_id").to_pylist()
    return ids


LAST_EVENT_TIME = "last_event_time_us"  # the counter behind Store.last_event_time


class DurableLog:
    """The log's steps and reads; the store holds the engine and the process's memory."""

    engine: sa.Engine
    # prediction ids this process has seen, per model; ids of batches not indexed yet
    _seen: dict[str, IdFilter]
    _unindexed: dict[str, dict[int, set[str]]]
    # batches this process has indexed, by (id, received_at): once retention has emptied
    # the log, SQLite hands out the same ids again
    _indexed: set[tuple[int, float]]

    def on_commit(self, conn: sa.Connection, action: Callable[[], None]) -> None:
        raise NotImplementedError  # Store's: run ``action`` once the transaction commits

    def raise_counts(self, conn: sa.Connection, model: str, values: Mapping[str, int]) -> None:
        raise NotImplementedError  # Store's: raise counters to at least ``values``

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
            try:
                ids = _payload_ids(bytes(payload))
            except Exception:  # unreadable: the processor moves it to the dead letters
                continue
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
        self,
        conn: sa.Connection,
        model: str,
        version: str,
        payload: bytes,
        ids: Sequence[str],
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
        return self.add_index_rows_of(conn, [(batch, rows)])[batch.id]

    def add_index_rows_of(
        self, conn: sa.Connection, batches: Sequence[tuple[LoggedBatch, Sequence[IndexRow]]]
    ) -> dict[int, set[str]]:
        """:meth:`add_index_rows` for claimed batches of one model, in one bulk insert; the
        ids each batch finds taken, by batch id."""
        received = time.time()
        inserted, skipped = _insert_ignoring_conflicts(
            conn,
            [
                (batch.model, batch.version, batch.id, received, *r)
                for batch, rows in batches
                for r in rows
            ],
        )
        taken: dict[int, set[str]] = {batch.id: set() for batch, _ in batches}
        if skipped is not None:
            for batch_id, prediction_id in skipped:
                taken[batch_id].add(prediction_id)
        elif inserted < sum(len(rows) for _, rows in batches):
            for batch, rows in batches:
                ids = [r[0] for r in rows]
                taken[batch.id] = self._existing_ids(conn, batch.model, ids, other_than=batch.id)
        newest: dict[str, float] = {}
        for batch, rows in batches:
            if rows:
                newest[batch.model] = max(newest.get(batch.model, -math.inf), *(r[1] for r in rows))
        for model, at in newest.items():
            self.raise_counts(conn, model, {LAST_EVENT_TIME: math.floor(at * 1e6)})

        def indexed() -> None:
            for batch, _ in batches:
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

    def pending_batch_heads(self, limit: int = 20) -> list[dict[str, Any]]:
        """:meth:`pending_batches` without their payloads (read once claimed)."""
        b = t.batches.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(b.id, b.model, b.version, b.received_at, b.events)
                .where(b.processed.is_(False))
                .order_by(b.id)
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
