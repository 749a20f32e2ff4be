"""The durable log's dead letters: a logged batch the processor failed on too often (the
setting ``processor_max_attempts``, in a row) is moved out of the log, with its last error,
into ``wk_dead_batches``, so one batch that cannot be processed never holds up the others.

Moving it is one write transaction: the batch leaves the log (it is no longer pending), any
index rows it got before failing are removed (labels for its predictions stay unmatched), and
the model's ``dead_lettered_batches_total`` and ``dead_lettered_events_total`` counters are
raised. Its payload is kept as it was logged, for inspection.

Once the cause is fixed (an upgrade, a wider column), :func:`replay_dead_letter` logs the
payload again as a new batch for the processor; :func:`delete_dead_letter` drops it for good.
The counters are totals of what happened: neither lowers them (a replay raises
``dead_letters_replayed_total``, a deletion ``dead_letters_deleted_total``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from watchkeeper.store import audit
from watchkeeper.store import tables as t

if TYPE_CHECKING:
    from watchkeeper.store.state import Store

ERROR_CHARS = 4000  # of the error text kept


def dead_letter(store: Store, batch_id: int, *, error: str, attempts: int) -> bool:
    """Move a logged batch to the dead letters; False when it is processed (or moved)
    already, e.g. by another processor."""

    def body(conn: sa.Connection) -> bool:
        batch = store.claim_batch(conn, batch_id)
        if batch is None:
            return False
        b = t.batches.c
        events = conn.execute(sa.select(b.events).where(b.id == batch_id)).scalar_one()
        conn.execute(
            t.dead_batches.insert().values(
                model=batch.model,
                version=batch.version,
                batch_id=batch_id,
                received_at=batch.received_at,
                events=events,
                payload=batch.payload,
                attempts=attempts,
                error=error[:ERROR_CHARS],
                dead_at=time.time(),
            )
        )
        ids = _ids_or_none(batch.payload)
        if ids:  # indexed before it failed (here, or by a label join): undo that
            p = t.predictions.c
            for start in range(0, len(ids), 500):
                conn.execute(
                    t.predictions.delete().where(
                        (p.model == batch.model)
                        & (p.batch_id == batch_id)
                        & p.prediction_id.in_(ids[start : start + 500])
                    )
                )
        conn.execute(t.batches.delete().where(b.id == batch_id))
        store.add_counts(
            conn,
            batch.model,
            {"dead_lettered_batches_total": 1, "dead_lettered_events_total": int(events)},
        )

        def forget() -> None:
            store._indexed.discard((batch_id, batch.received_at))
            store._unindexed.get(batch.model, {}).pop(batch_id, None)

        store.on_commit(conn, forget)
        return True

    return store.write(body)


def dead_letters(
    store: Store, model: str, *, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    """The model's dead-lettered batches, oldest first, without their payloads."""
    d = t.dead_batches.c
    columns = [c for c in t.dead_batches.c if c.name != "payload"]
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(*columns, sa.func.length(d.payload).label("payload_bytes"))
            .where(d.model == model)
            .order_by(d.id)
            .limit(limit)
            .offset(offset)
        ).mappings()
        return [dict(r) for r in rows]


def replay_dead_letter(store: Store, model: str, dead_id: int) -> dict[str, Any] | None:
    """Log a dead-lettered batch's payload again as a new batch and remove it from the dead
    letters, in one transaction; None when the model has no dead letter ``dead_id``.

    Its events are processed like any others: ids stored meanwhile (the client sent them again)
    count as duplicates, and a batch that still fails comes back to the dead letters."""
    d = t.dead_batches.c

    def body(conn: sa.Connection) -> dict[str, Any] | None:
        row = conn.execute(
            sa.select(d.version, d.payload, d.events)
            .where((d.model == model) & (d.id == dead_id))
            .with_for_update()
        ).first()
        if row is None:
            return None
        payload = bytes(row.payload)
        ids = _ids_or_none(payload)
        batch_id = store.log_batch(conn, model, row.version, payload, ids or [])
        if ids is None:  # unreadable: log_batch counted none, keep the logged count
            b = t.batches.c
            conn.execute(t.batches.update().where(b.id == batch_id).values(events=row.events))
        conn.execute(t.dead_batches.delete().where(d.id == dead_id))
        store.add_counts(conn, model, {"dead_letters_replayed_total": 1})
        audit.record(
            conn,
            "dead_letter_replayed",
            f"{model}/dead-letters/{dead_id}",
            model=model,
            before={"id": dead_id, "version": row.version, "events": int(row.events)},
            after={"batch_id": batch_id},
        )
        return {"id": dead_id, "batch_id": batch_id, "events": int(row.events)}

    return store.write(body)


def delete_dead_letter(store: Store, model: str, dead_id: int) -> bool:
    """Drop a dead-lettered batch and its events for good; False when the model has no dead
    letter ``dead_id``."""
    d = t.dead_batches.c

    def body(conn: sa.Connection) -> bool:
        where = (d.model == model) & (d.id == dead_id)
        row = conn.execute(sa.select(d.version, d.events, d.error).where(where)).first()
        if row is None:
            return False
        conn.execute(t.dead_batches.delete().where(where))
        store.add_counts(conn, model, {"dead_letters_deleted_total": 1})
        before = {"id": dead_id, "version": row.version, "events": row.events, "error": row.error}
        audit.record(
            conn, "dead_letter_deleted", f"{model}/dead-letters/{dead_id}", model=model,
            before=before,
        )  # fmt: skip
        return True

    return store.write(body)


def _ids_or_none(payload: bytes) -> list[str] | None:
    """The batch's prediction ids, or None when its payload cannot be read."""
    from watchkeeper.store.log import _payload_ids

    try:
        return _payload_ids(payload)
    except Exception:  # the payload may be why the batch is dead
        return None
