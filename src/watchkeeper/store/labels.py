"""The label tables: stored ground truth (``wk_actuals``) and the performance aggregate of each
bucket (``wk_bucket_performance``).

Connection-level steps, run inside a write transaction of the label join
(``watchkeeper.ingest.labels``), which owns the join's rules; and the read of the buckets'
performance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from watchkeeper.store import tables as t
from watchkeeper.store.log import ID_CHUNK
from watchkeeper.store.state import Store

# (version, segment, granularity, bucket) of a bucket of a model's performance
PerformanceKey = tuple[str, str, int, int]


def rows_by_id(
    conn: sa.Connection, table: sa.Table, model: str, ids: Sequence[str], *where: Any
) -> dict[str, dict[str, Any]]:
    """The rows of ``table`` (predictions or actuals) for these prediction ids, by id."""
    c = table.c
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), ID_CHUNK):
        chunk = list(ids[start : start + ID_CHUNK])
        query = sa.select(table).where((c.model == model) & c.prediction_id.in_(chunk), *where)
        for row in conn.execute(query).mappings():
            found[row["prediction_id"]] = dict(row)
    return found


def predictions_by_id(
    conn: sa.Connection, model: str, ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The prediction-index rows of these ids, by id."""
    return rows_by_id(conn, t.predictions, model, ids)


def labels_by_id(
    conn: sa.Connection, model: str, ids: Sequence[str], *, status: str | None = None
) -> dict[str, dict[str, Any]]:
    """The stored labels of these ids (``status``: only those with it), by id."""
    where = () if status is None else (t.actuals.c.status == status,)
    return rows_by_id(conn, t.actuals, model, ids, *where)


def add_labels(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store labels: rows of (model, prediction_id, label, received_at, status)."""
    if rows:
        conn.execute(t.actuals.insert(), list(rows))


def set_label_status(conn: sa.Connection, model: str, prediction_id: str, status: str) -> None:
    a = t.actuals.c
    conn.execute(
        t.actuals.update()
        .where((a.model == model) & (a.prediction_id == prediction_id))
        .values(status=status)
    )


def _where(model: str, key: PerformanceKey) -> Any:
    bp = t.bucket_performance.c
    version, segment, granularity, bucket = key
    return (
        (bp.model == model)
        & (bp.version == version)
        & (bp.segment == segment)
        & (bp.granularity == granularity)
        & (bp.bucket == bucket)
    )


def performance_row(conn: sa.Connection, model: str, key: PerformanceKey) -> dict[str, Any] | None:
    """The stored performance of one bucket (labels, aggregate, updated_at), or None."""
    q = sa.select(t.bucket_performance).where(_where(model, key))
    row = conn.execute(q).mappings().first()
    return None if row is None else dict(row)


def put_performance(
    conn: sa.Connection,
    model: str,
    key: PerformanceKey,
    *,
    labels: int,
    aggregate: dict[str, Any],
    updated_at: float,
) -> None:
    """Write one bucket's performance, replacing the row of its key if there is one."""
    values = {"labels": labels, "aggregate": aggregate, "updated_at": updated_at}
    if conn.execute(
        t.bucket_performance.update().where(_where(model, key)).values(**values)
    ).rowcount:
        return
    version, segment, granularity, bucket = key
    conn.execute(
        t.bucket_performance.insert().values(
            model=model,
            version=version,
            segment=segment,
            granularity=granularity,
            bucket=bucket,
            **values,
        )
    )


def bucket_performance(
    store: Store, model: str, *, granularity: int, start: int | None = None, end: int | None = None
) -> list[dict[str, Any]]:
    bp = t.bucket_performance.c
    q = sa.select(t.bucket_performance).where((bp.model == model) & (bp.granularity == granularity))
    if start is not None:
        q = q.where(bp.bucket >= start)
    if end is not None:
        q = q.where(bp.bucket < end)
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(q.order_by(bp.bucket)).mappings()]
