"""Retention: raw events are kept for the model's ``retention_days``; profiles and metric points
are kept longer, downsampled.

* the Parquet lake: day partitions older than ``retention_days`` are deleted;
* the durable log: processed batches are deleted once they are in the lake (their events live
  on in the lake and in the profiles);
* the prediction-id index: entries received longer ago than the label horizon *and* the
  retention are deleted (by receive time, so a retried backfill of old events is still
  recognised as a retry for that long);
* window-level profiles, evaluations and metric points older than ``retention_days`` are
  deleted; the daily profiles are kept (the roll-up: hour → day).
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

DAY = 86400


def sweep(store: Store, lake_dir: Path, *, now: float | None = None) -> dict[str, int]:
    """Apply every model's retention; return how much was removed."""
    now = time.time() if now is None else now
    removed = {
        "lake_partitions": 0,
        "batches": 0,
        "index_rows": 0,
        "window_profiles": 0,
        "metric_points": 0,
    }
    with store.write() as conn:
        removed["batches"] = conn.execute(
            t.batches.delete().where(t.batches.c.processed.is_(True))
        ).rowcount
    for info in store.models():
        cutoff = now - info.retention_days * DAY
        index_cutoff = now - max(info.retention_days * DAY, info.label_horizon_seconds)
        with store.write() as conn:
            p, bp, mp, ev = t.predictions.c, t.bucket_profiles.c, t.metric_points.c, t.evaluations.c
            removed["index_rows"] += conn.execute(
                t.predictions.delete().where(
                    (p.model == info.name) & (p.received_at < index_cutoff)
                )
            ).rowcount
            removed["window_profiles"] += conn.execute(
                t.bucket_profiles.delete().where(
                    (bp.model == info.name) & (bp.granularity < DAY) & (bp.bucket < cutoff)
                )
            ).rowcount
            removed["metric_points"] += conn.execute(
                t.metric_points.delete().where((mp.model == info.name) & (mp.window_start < cutoff))
            ).rowcount
            conn.execute(
                t.evaluations.delete().where((ev.model == info.name) & (ev.window_start < cutoff))
            )
            conn.execute(
                t.bucket_performance.delete().where(
                    (t.bucket_performance.c.model == info.name)
                    & (t.bucket_performance.c.granularity < DAY)
                    & (t.bucket_performance.c.bucket < cutoff)
                )
            )
        root = lake_dir / f"model={info.name}"
        day_cutoff = datetime.fromtimestamp(cutoff, UTC).strftime("%Y-%m-%d")
        for part in sorted(root.glob("version=*/date=*")):
            if part.name.split("=", 1)[1] < day_cutoff:
                shutil.rmtree(part, ignore_errors=True)
                removed["lake_partitions"] += 1

    return removed
