"""Retention: raw events are kept for the model's ``retention_days``; profiles and metric points
are kept longer, downsampled.

* the Parquet lake: day partitions older than ``retention_days`` are deleted;
* the durable log: processed batches are deleted once they are in the lake (their events live
  on in the lake and in the profiles);
* the prediction-id index: entries received longer ago than the label horizon *and* the
  retention are deleted (by receive time, so a retried backfill of old events is still
  recognised as a retry for that long);
* dead-lettered batches (``store.dead_letters``) moved there longer ago than
  ``retention_days`` are deleted;
* window-level profiles, evaluations, failing slices and metric points older than
  ``retention_days`` are deleted; the daily profiles are kept (the roll-up: hour → day), and
  before a day's window points go, the day is evaluated from its daily profile and labels: its
  metric points (``window_seconds`` 86400) stay, so every series goes on as daily points.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

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
        "days_downsampled": 0,
        "dead_batches": 0,
    }
    with store.write() as conn:
        removed["batches"] = conn.execute(
            t.batches.delete().where(t.batches.c.processed.is_(True))
        ).rowcount
    for info in store.models():
        cutoff = now - info.retention_days * DAY
        index_cutoff = now - max(info.retention_days * DAY, info.label_horizon_seconds)
        if info.window_seconds < DAY:
            removed["days_downsampled"] += downsample(store, info.name, before=cutoff)
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
                t.metric_points.delete().where(
                    (mp.model == info.name) & (mp.window_seconds < DAY) & (mp.window_start < cutoff)
                )
            ).rowcount
            conn.execute(
                t.evaluations.delete().where((ev.model == info.name) & (ev.window_start < cutoff))
            )
            ws = t.window_slices.c
            conn.execute(
                t.window_slices.delete().where((ws.model == info.name) & (ws.window_start < cutoff))
            )
            dead = t.dead_batches.c
            removed["dead_batches"] += conn.execute(
                t.dead_batches.delete().where((dead.model == info.name) & (dead.dead_at < cutoff))
            ).rowcount
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


def downsample(store: Store, model: str, *, before: float) -> int:
    """Evaluate each whole day before ``before`` that has window points but no daily points
    yet, from its daily profile and labels; return how many days were evaluated."""
    from watchkeeper.evaluation.evaluate import window_points, write_points

    bp, mp, perf = t.bucket_profiles.c, t.metric_points.c, t.bucket_performance.c
    with store.engine.connect() as conn:
        have = {
            (r.version, r.segment, r.window_start)
            for r in conn.execute(
                sa.select(mp.version, mp.segment, mp.window_start)
                .where((mp.model == model) & (mp.window_seconds == DAY))
                .distinct()
            )
        }
        windowed = {
            (r.version, r.segment, r.window_start // DAY * DAY)
            for r in conn.execute(
                sa.select(mp.version, mp.segment, mp.window_start)
                .where((mp.model == model) & (mp.window_seconds < DAY) & (mp.window_start < before))
                .distinct()
            )
        }
        days = (
            conn.execute(
                sa.select(t.bucket_profiles).where(
                    (bp.model == model) & (bp.granularity == DAY) & (bp.bucket + DAY <= before)
                )
            )
            .mappings()
            .all()
        )
        labels = {
            (r["version"], r["segment"], r["bucket"]): dict(r)
            for r in conn.execute(
                sa.select(t.bucket_performance).where(
                    (perf.model == model) & (perf.granularity == DAY) & (perf.bucket < before)
                )
            ).mappings()
        }
    done = 0
    for day in days:
        key = (day["version"], day["segment"], day["bucket"])
        if key in have or key not in windowed:
            continue
        row = {**dict(day), "performance_row": labels.get(key)}
        points, _ = window_points(store, model, row)
        with store.write() as conn:
            write_points(conn, model, DAY, row, points)
        done += 1
    return done
