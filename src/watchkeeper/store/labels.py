"""Joining late ground truth to the predictions it belongs to.

A label joins by ``prediction_id``. It updates the performance aggregate of the bucket of the
*prediction's* event time (per version, segment and granularity), so a window's performance
fills in as its labels arrive. A label for an unknown prediction is ``unmatched``; one that
arrives after the model's label horizon is ``late``; a second label for the same prediction
is a ``duplicate``. Unmatched and late labels are stored and counted, never applied silently
nor dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from watchkeeper.store import tables as t
from watchkeeper.store.state import ID_CHUNK, Store

# (old aggregate or None, [(prediction, label, score)]) → the new aggregate
# (version, segment, event time) → the matched (prediction, label, score) items there
Pairs = dict[tuple[str, str, float], list[tuple[str | None, str, float | None]]]
Aggregator = Callable[
    [dict[str, Any] | None, list[tuple[str | None, str, float | None]]], dict[str, Any]
]


def accept_actuals(
    store: Store,
    model: str,
    actuals: Sequence[dict[str, Any]],
    *,
    horizon_seconds: float,
    granularities: Sequence[int],
    aggregate: Aggregator,
    now: float | None = None,
) -> dict[str, int]:
    """Store labels and fold matched ones into the performance of their prediction's bucket.

    ``aggregate(old, items)`` merges ``(prediction, label, score)`` items into a stored aggregate
    dict (None when the bucket has none yet) and returns the new one.
    """
    now = time.time() if now is None else now
    ids = [str(a["prediction_id"]) for a in actuals]
    result = {"matched": 0, "unmatched": 0, "late": 0, "duplicates": 0}
    with store.write() as conn:
        known = _rows_by_id(conn, t.predictions, model, ids)
        labelled = set(_rows_by_id(conn, t.actuals, model, ids))
        rows: list[dict[str, Any]] = []
        pairs: Pairs = {}
        for item, pid in zip(actuals, ids, strict=True):
            if pid in labelled:
                result["duplicates"] += 1
                continue
            labelled.add(pid)
            pred = known.get(pid)
            if pred is None:
                status = "unmatched"
            elif now - pred["event_time"] > horizon_seconds:
                status = "late"
            else:
                status = "matched"
                _add_pair(pairs, pred, str(item["label"]))
            result[status] += 1
            rows.append(
                {
                    "model": model,
                    "prediction_id": pid,
                    "label": str(item["label"]),
                    "received_at": now,
                    "status": status,
                }
            )
        if rows:
            conn.execute(t.actuals.insert(), rows)
        _fold(conn, model, pairs, granularities, aggregate, now)
        store._bump(
            conn,
            model,
            {
                "actuals_total": result["matched"],
                "actuals_unmatched_total": result["unmatched"],
                "actuals_late_total": result["late"],
                "actuals_duplicates_total": result["duplicates"],
            },
        )
    return result


def _rows_by_id(
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


def _add_pair(pairs: Pairs, prediction: Mapping[str, Any], label: str) -> None:
    """A matched label, keyed by its prediction's version, segment and event time."""
    key = (prediction["version"], prediction["segment"], prediction["event_time"])
    pairs.setdefault(key, []).append((prediction["prediction"], label, prediction["score"]))


def _fold(
    conn: sa.Connection,
    model: str,
    pairs: Pairs,
    granularities: Sequence[int],
    aggregate: Aggregator,
    now: float,
) -> None:
    """Fold matched (prediction, label, score) items, keyed by (version, segment, event
    time), into the performance aggregate of each bucket they belong to."""
    grouped: dict[tuple[str, str, int, int], list[tuple[str | None, str, float | None]]] = {}
    for (version, segment, event_time), items in pairs.items():
        segs = [segment, "*"] if segment else [""]
        for seg in segs:
            for g in granularities:
                bucket = int(event_time // g * g)
                grouped.setdefault((version, seg, g, bucket), []).extend(items)
    bp = t.bucket_performance.c
    for (version, seg, g, bucket), items in grouped.items():
        where = (
            (bp.model == model)
            & (bp.version == version)
            & (bp.segment == seg)
            & (bp.granularity == g)
            & (bp.bucket == bucket)
        )
        old = conn.execute(sa.select(t.bucket_performance).where(where)).mappings().first()
        agg = aggregate(None if old is None else old["aggregate"], items)
        values = {
            "labels": (0 if old is None else old["labels"]) + len(items),
            "aggregate": agg,
            "updated_at": now,
        }
        if old is None:
            conn.execute(
                t.bucket_performance.insert().values(
                    model=model,
                    version=version,
                    segment=seg,
                    granularity=g,
                    bucket=bucket,
                    **values,
                )
            )
        else:
            conn.execute(t.bucket_performance.update().where(where).values(**values))


def rematch(
    store: Store,
    model: str,
    ids: Sequence[str],
    *,
    horizon_seconds: float,
    granularities: Sequence[int],
    aggregate: Aggregator,
) -> int:
    """Join labels that came before their prediction: once the predictions of ``ids`` are in
    the index, their ``unmatched`` labels become ``matched`` (folded into the performance of
    their bucket) or ``late`` (the label came after the horizon counted from the prediction's
    event time). Returns how many were joined. Idempotent: only unmatched labels move."""
    a = t.actuals.c
    pairs: Pairs = {}
    moved = {"matched": 0, "late": 0}
    now = time.time()
    with store.write() as conn:
        waiting = _rows_by_id(conn, t.actuals, model, ids, t.actuals.c.status == "unmatched")
        if not waiting:
            return 0
        for pred in _rows_by_id(conn, t.predictions, model, list(waiting)).values():
            label = waiting[pred["prediction_id"]]
            late = label["received_at"] - pred["event_time"] > horizon_seconds
            status = "late" if late else "matched"
            moved[status] += 1
            conn.execute(
                t.actuals.update()
                .where((a.model == model) & (a.prediction_id == pred["prediction_id"]))
                .values(status=status)
            )
            if not late:
                _add_pair(pairs, pred, label["label"])
        _fold(conn, model, pairs, granularities, aggregate, now)
        store._bump(
            conn,
            model,
            {
                "actuals_unmatched_total": -(moved["matched"] + moved["late"]),
                "actuals_total": moved["matched"],
                "actuals_late_total": moved["late"],
            },
        )
    return moved["matched"] + moved["late"]


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
