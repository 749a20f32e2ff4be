"""The prediction index: one row per logged event (id, event time, the bucket of the model's
window, segment key, prediction, score), for label joins and exact deduplication.

``index_batches`` indexes a run of logged batches of one model version in one write
transaction and one bulk insert (``Store.add_index_rows_of``: ``COPY`` on PostgreSQL) and
hands back their events, each batch decoded once: the processor writes those same tables to
the lake and profiles them, and the label join reads their ids from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from watchkeeper.ingest.events import from_ipc, to_ipc
from watchkeeper.ingest.registry import target_classes
from watchkeeper.ingest.validate import as_text
from watchkeeper.profiles import DatasetProfile
from watchkeeper.schema import Role, Schema
from watchkeeper.store.log import IndexRow, LoggedBatch
from watchkeeper.store.state import ModelInfo, Store


@dataclass(frozen=True)
class IndexedBatch:
    """A logged batch once its events are in the index: its model, version and events."""

    id: int
    model: str
    version: str
    table: pa.Table


def index_batch(store: Store, batch_id: int) -> IndexedBatch | None:
    """Write a logged batch's rows to the prediction index; return its events then (None when
    the batch is processed or swept already). See :func:`index_batches`."""
    indexed = index_batches(store, [batch_id])
    return indexed[0] if indexed else None


def index_batches(store: Store, batch_ids: Sequence[int]) -> list[IndexedBatch]:
    """Write the rows of logged batches (of one model) to the prediction index in one
    transaction; return their events then, in order (without the batches processed or swept
    already).

    Ids another process stored first are dropped from their batch (its payload rewritten) and
    moved from ``events_total`` to ``duplicates_total`` in the same transaction, so running
    this again, or after a crash, changes nothing."""

    def body(conn: sa.Connection) -> list[IndexedBatch]:
        claimed: list[tuple[LoggedBatch, pa.Table]] = []
        for batch_id in batch_ids:
            batch = store.claim_batch(conn, batch_id)
            if batch is not None:
                claimed.append((batch, from_ipc(batch.payload)))
        todo = [(batch, table) for batch, table in claimed if not batch.indexed]
        if todo:
            info = store.model(todo[0][0].model)
            rows = store.add_index_rows_of(
                conn,
                [
                    (batch, index_rows(store, batch.model, batch.version, table, info))
                    for batch, table in todo
                ],
            )
            for k, (batch, table) in enumerate(claimed):
                taken = rows.get(batch.id)
                if not taken:
                    continue
                keep = pc.invert(pc.is_in(table.column("prediction_id"), pa.array(sorted(taken))))
                kept = table.filter(keep)
                claimed[k] = (batch, kept)
                store.rewrite_batch(conn, batch.id, to_ipc(kept), kept.num_rows)
                store.add_counts(
                    conn,
                    batch.model,
                    {"events_total": -len(taken), "duplicates_total": len(taken)},
                )
        return [IndexedBatch(b.id, b.model, b.version, table) for b, table in claimed]

    return store.write(body)


def index_rows(
    store: Store, model: str, version: str, table: pa.Table, info: ModelInfo | None = None
) -> list[IndexRow]:
    """The prediction-index rows of a version's events, in the table's order (``info``: the
    model's row, read when not given)."""
    info = info or store.model(model)
    schema, reference = store.reference(model, version)
    event_time = table.column("event_time").to_numpy()
    window = info.window_seconds
    buckets = (np.floor(event_time / window) * window).astype(np.int64).tolist()
    return list(
        zip(
            table.column("prediction_id").to_pylist(),
            event_time.tolist(),
            buckets,
            segment_keys(table, info.segments),
            predictions(table, schema),
            scores(table, schema, reference),
            strict=True,
        )
    )


def segment_keys(table: pa.Table, segments: list[str]) -> list[str]:
    """One key per row, ``name=value|name=value`` in the model's segment order ('' if none)."""
    if not segments:
        return [""] * table.num_rows
    parts = []
    for name in segments:
        values = (
            pc.cast(table.column(name), pa.string()).to_pylist()
            if name in table.column_names
            else [None] * table.num_rows
        )
        parts.append([f"{name}={'' if v is None else v}" for v in values])
    return ["|".join(p) for p in zip(*parts, strict=True)]


def predictions(table: pa.Table, schema: Schema) -> list[str | None]:
    """Each event's prediction as text, for the label join: the reserved ``prediction`` field,
    or else the column the schema names as the prediction (e.g. ``pred``)."""
    out = pa.nulls(table.num_rows, pa.string())
    if "prediction" in table.column_names:
        out = as_text(table.column("prediction").combine_chunks())
    for col in schema.by_role(Role.PREDICTION):
        if col.name in table.column_names and col.name != "prediction":
            out = pc.coalesce(out, as_text(table.column(col.name).combine_chunks()))
            break
    values: list[str | None] = out.to_pylist()
    return values


def scores(
    table: pa.Table, schema: Schema, reference: DatasetProfile | None = None
) -> list[float | None]:
    """Each event's score (the positive class's probability), for ROC AUC once labels come:
    the first column the schema names as a score that the event has; else, for a binary
    target, the event's ``scores`` entry of the positive class (``score.<class>``, the class
    that sorts last, as in the performance aggregate)."""
    names = [col.name for col in schema.by_role(Role.SCORE)]
    classes = target_classes(schema, reference) if reference is not None else None
    if classes is not None:
        names.append(f"score.{classes[-1]}")
    present = [
        pc.cast(table.column(name), pa.float64(), safe=False)
        for name in names
        if name in table.column_names
    ]
    if not present:
        return [None] * table.num_rows
    out: list[float | None] = (
        present[0] if len(present) == 1 else pc.coalesce(*present)
    ).to_pylist()  # per event, the first of them it has
    return out
