"""Joining late ground truth to the predictions it belongs to.

A label joins by ``prediction_id``. It updates the performance aggregate of the bucket of the
*prediction's* event time (per version, segment and granularity), so a window's performance
fills in as its labels arrive. A label for an unknown prediction is ``unmatched``; one that
arrives after the model's label horizon is ``late``; a second label for the same prediction
is a ``duplicate``. Unmatched and late labels are stored and counted, never applied silently
nor dropped. Once the prediction of an unmatched label is indexed, the label joins then
(``join_waiting``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from watchkeeper.errors import InputError
from watchkeeper.ingest.index import index_batch
from watchkeeper.ingest.registry import target_classes, task_of
from watchkeeper.ingest.validate import label_problems
from watchkeeper.stats.labelled import Labelled, fold_labelled
from watchkeeper.store import labels as stored
from watchkeeper.store.faults import transient
from watchkeeper.store.state import Store

log = logging.getLogger("watchkeeper.labels")

# (version, segment, event time) → the matched (prediction, label, score) items there
Pairs = dict[tuple[str, str, float], list[Labelled]]


def accept_actuals(store: Store, model: str, body: bytes) -> dict[str, Any]:
    """Join a body of ground-truth labels to their predictions; one bad label rejects only
    itself (counted in ``actuals_rejected_total``)."""
    info = store.model(model)
    items, rejected = check_actuals(parse_actuals(body))
    if info.champion is None:
        raise InputError(f"model {model!r} has no version yet")
    index_pending(store, model)
    schema, reference = store.reference(model, info.champion)
    result: dict[str, Any] = record_actuals(
        store,
        model,
        items,
        horizon_seconds=info.label_horizon_seconds,
        granularities=sorted({info.window_seconds, 86400}),
        task=task_of(schema),
        classes=target_classes(schema, reference),
    )
    if rejected:
        store.bump(model, {"actuals_rejected_total": len(rejected)})
    result["rejected"] = len(rejected)
    result["errors"] = rejected
    return result


def index_pending(store: Store, model: str) -> int:
    """Index the model's logged batches the processor has not reached yet (a label join
    needs its predictions in the index); return how many were indexed. A batch that cannot
    be indexed is left to the processor (which dead-letters it, see ``store.dead_letters``):
    labels for its predictions stay unmatched, the labels themselves are still recorded."""
    done = 0
    for batch_id in store.unindexed_batches(model):
        try:
            indexed = index_batch(store, batch_id)
        except Exception as exc:
            if transient(exc):  # the database is away: the labels cannot be kept either
                raise
            log.exception("indexing batch %s of model %r for a label join failed", batch_id, model)
            continue
        if indexed is not None:
            join_waiting(store, model, indexed.table.column("prediction_id").to_pylist())
        done += 1
    return done


def record_actuals(
    store: Store,
    model: str,
    actuals: Sequence[Mapping[str, Any]],
    *,
    horizon_seconds: float,
    granularities: Sequence[int],
    task: str,
    classes: Sequence[str] | None = None,
    now: float | None = None,
) -> dict[str, int]:
    """Store labels and fold matched ones into the performance of their prediction's bucket
    (``task`` and ``classes`` as in :func:`watchkeeper.stats.labelled.fold_labelled`)."""
    when = time.time() if now is None else now
    ids = [str(a["prediction_id"]) for a in actuals]

    def body(conn: sa.Connection) -> dict[str, int]:
        result = {"matched": 0, "unmatched": 0, "late": 0, "duplicates": 0}
        known = stored.predictions_by_id(conn, model, ids)
        labelled = set(stored.labels_by_id(conn, model, ids))
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
            elif when - pred["event_time"] > horizon_seconds:
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
                    "received_at": when,
                    "status": status,
                }
            )
        stored.add_labels(conn, rows)
        _fold(conn, model, pairs, granularities, task, classes, when)
        store.add_counts(
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

    return store.write(body)


def join_waiting(store: Store, model: str, ids: Sequence[str]) -> int:
    """Join the model's unmatched labels of these predictions (indexed now): each becomes
    ``matched`` (folded into the performance of its bucket) or ``late`` (it came after the
    horizon counted from the prediction's event time). Returns how many were joined.
    Idempotent: only unmatched labels move."""
    if not store.counters(model).get("actuals_unmatched_total"):
        return 0  # the common case: no label waits
    info = store.model(model)
    if info.champion is None:
        return 0
    schema, reference = store.reference(model, info.champion)
    task, classes = task_of(schema), target_classes(schema, reference)
    granularities = sorted({info.window_seconds, 86400})
    horizon = info.label_horizon_seconds

    def body(conn: sa.Connection) -> int:
        now = time.time()
        waiting = stored.labels_by_id(conn, model, ids, status="unmatched")
        if not waiting:
            return 0
        pairs: Pairs = {}
        moved = {"matched": 0, "late": 0}
        for pred in stored.predictions_by_id(conn, model, list(waiting)).values():
            label = waiting[pred["prediction_id"]]
            late = label["received_at"] - pred["event_time"] > horizon
            status = "late" if late else "matched"
            moved[status] += 1
            stored.set_label_status(conn, model, pred["prediction_id"], status)
            if not late:
                _add_pair(pairs, pred, label["label"])
        _fold(conn, model, pairs, granularities, task, classes, now)
        store.add_counts(
            conn,
            model,
            {
                "actuals_unmatched_total": -(moved["matched"] + moved["late"]),
                "actuals_total": moved["matched"],
                "actuals_late_total": moved["late"],
            },
        )
        return moved["matched"] + moved["late"]

    return store.write(body)


def _add_pair(pairs: Pairs, prediction: Mapping[str, Any], label: str) -> None:
    """A matched label, keyed by its prediction's version, segment and event time."""
    key = (prediction["version"], prediction["segment"], prediction["event_time"])
    pairs.setdefault(key, []).append((prediction["prediction"], label, prediction["score"]))


def _fold(
    conn: sa.Connection,
    model: str,
    pairs: Pairs,
    granularities: Sequence[int],
    task: str,
    classes: Sequence[str] | None,
    now: float,
) -> None:
    """Fold matched items, keyed by (version, segment, event time), into the performance
    aggregate of each bucket they belong to (the segment's and ``*``)."""
    grouped: dict[stored.PerformanceKey, list[Labelled]] = {}
    for (version, segment, event_time), items in pairs.items():
        for seg in [segment, "*"] if segment else [""]:
            for g in granularities:
                bucket = int(event_time // g * g)
                grouped.setdefault((version, seg, g, bucket), []).extend(items)
    for key, items in grouped.items():
        old = stored.performance_row(conn, model, key)
        stored.put_performance(
            conn,
            model,
            key,
            labels=(0 if old is None else old["labels"]) + len(items),
            aggregate=fold_labelled(
                task, None if old is None else old["aggregate"], items, classes
            ),
            updated_at=now,
        )


def parse_actuals(body: bytes) -> list[Any]:
    """``{"actuals": [{"prediction_id", "label", "timestamp"?}]}`` or a bare list."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"body is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("actuals")
    if not isinstance(data, list):
        raise InputError('expected {"actuals": [{"prediction_id": ..., "label": ...}, ...]}')
    return data


def check_actuals(data: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(valid actuals, rejected ones with a reason each): one bad label rejects only itself."""
    good, bad = [], []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            bad.append({"index": i, "reasons": [{"field": "", "problem": "expected an object"}]})
            continue
        missing = [k for k in ("prediction_id", "label") if item.get(k) in (None, "")]
        nested = [k for k in ("prediction_id", "label") if isinstance(item.get(k), dict | list)]
        nul = [k for k in ("prediction_id", "label") if "\x00" in str(item.get(k))]
        if missing or nested or nul:
            reasons = [{"field": k, "problem": "missing"} for k in missing]
            reasons += [{"field": k, "problem": "expected a single value"} for k in nested]
            reasons += [{"field": k, "problem": "contains a NUL character (U+0000)"} for k in nul]
            bad.append({"index": i, "prediction_id": item.get("prediction_id"), "reasons": reasons})
            continue
        problems = label_problems(item)  # what the store cannot hold, or not finite
        if problems:
            bad.append({"index": i, "prediction_id": item["prediction_id"], "reasons": problems})
            continue
        good.append(item)
    return good, bad
