"""The training data of the retraining trigger: one window's labelled predictions.

The latest labelled window of a model version at or before a given window: its predictions
that have a matched label, read from the Parquet lake — the files of the batches the
prediction index names (``model=/version=/date=/batch-<id>-<received>.parquet``) — and joined
with ``wk_actuals``. One row per labelled prediction, every lake column (id, event time,
features, prediction, scores, latency, status) plus ``label``, in the prediction's type when
every label casts (labels are stored as text).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from watchkeeper.store import tables as t
from watchkeeper.store.state import Store


def labelled_window(
    store: Store, model: str, version: str, window_start: int, segment: str = ""
) -> tuple[int, int] | None:
    """(window start, labels) of the latest window at or before ``window_start`` with labels."""
    info = store.model(model)
    bp = t.bucket_performance.c
    seg = segment if segment not in ("", "*") else ("*" if info.segments else "")
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(bp.bucket, bp.labels)
            .where(
                (bp.model == model)
                & (bp.version == version)
                & (bp.segment == seg)
                & (bp.granularity == info.window_seconds)
                & (bp.bucket <= window_start)
                & (bp.labels > 0)
            )
            .order_by(bp.bucket.desc())
            .limit(1)
        ).first()
    return None if row is None else (int(row.bucket), int(row.labels))


def export_window(
    store: Store,
    lake_dir: Path,
    model: str,
    version: str,
    window_start: int,
    out: Path,
    *,
    segment: str = "",
) -> int:
    """Write the labelled predictions of one window to ``out`` (Parquet); return the rows."""
    info = store.model(model)
    end = window_start + info.window_seconds
    p, a = t.predictions.c, t.actuals.c
    q = (
        sa.select(p.prediction_id, p.batch_id, a.label)
        .join(t.actuals, (a.model == p.model) & (a.prediction_id == p.prediction_id))
        .where(
            (p.model == model)
            & (p.version == version)
            & (p.event_time >= window_start)
            & (p.event_time < end)
            & (a.status == "matched")
        )
    )
    if segment not in ("", "*"):
        q = q.where(p.segment == segment)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    labels = {r.prediction_id: r.label for r in rows}
    batches = sorted({int(r.batch_id) for r in rows})
    parts = []
    root = lake_dir / f"model={model}" / f"version={version}"
    wanted = pa.array(sorted(labels), pa.string())
    for batch_id in batches:
        for path in sorted(root.glob(f"date=*/batch-{batch_id:012d}-*.parquet")):
            table = pq.read_table(path)
            ids = pc.cast(table.column("prediction_id"), pa.string())
            times = table.column("event_time")
            mask = pc.and_(
                pc.is_in(ids, wanted),
                pc.and_(pc.greater_equal(times, window_start), pc.less(times, end)),
            )
            parts.append(table.filter(mask))
    if parts:
        table = pa.concat_tables(parts, promote_options="permissive")
        ids = pc.cast(table.column("prediction_id"), pa.string()).to_pylist()
        first: dict[str, int] = {}
        for i, pid in enumerate(ids):  # an id in two files (a batch id reused): keep one
            first.setdefault(pid, i)
        if len(first) < len(ids):
            table = table.take(pa.array(sorted(first.values())))
            ids = [ids[i] for i in sorted(first.values())]
        table = table.append_column(
            "label", typed_labels(pa.array([labels[i] for i in ids]), table)
        )
        order = pc.sort_indices(
            table, [("event_time", "ascending"), ("prediction_id", "ascending")]
        )
        table = table.take(order)
    else:
        table = pa.table(
            {"prediction_id": pa.array([], pa.string()), "label": pa.array([], pa.string())}
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(out)
    return int(table.num_rows)


def typed_labels(labels: pa.Array, table: pa.Table) -> pa.Array:
    """Labels (stored as text) in the prediction column's type when every one casts."""
    if "prediction" not in table.column_names:
        return labels
    kind = table.schema.field("prediction").type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return labels
    try:
        if pa.types.is_boolean(kind):
            lowered = pc.utf8_lower(labels)
            return pc.is_in(lowered, pa.array(["true", "1"]))
        return pc.cast(labels, kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return labels
