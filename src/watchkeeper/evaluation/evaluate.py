"""Evaluate closed windows: drift, data quality, performance and operations → metric points.

A window is a bucket of the model's ``window_seconds`` (per version and segment, ``*`` for
all segments). It is evaluated once it has closed, and again whenever its profile changes
(late events) or labels for its predictions arrive (late ground truth). Each evaluation
replaces the window's metric points:

* ``drift_statistic`` per drift feature, with threshold, method and decision in ``detail``;
  ``drifted_share`` over the drift features; ``prediction_drift`` the same for the model's
  outputs (its prediction and score columns), apart from the features' counts;
* ``missing_share`` per feature;
* ``count``, ``error_rate``, ``latency_p50`` / ``latency_p95`` / ``latency_p99`` (seconds,
  interpolated in the latency histogram);
* ``multivariate_pca``: the window's mean PCA reconstruction error against the version's
  reference, with threshold and decision in ``detail`` (:mod:`watchkeeper.evaluation.joint`;
  when the evaluator has the lake and the version its PCA state);
* ``estimated_accuracy``, ``estimated_f1``, ... / ``estimated_mae``, ``estimated_rmse``: the
  performance estimated without labels (CBPE, DLE), the interval in ``detail``
  (:mod:`watchkeeper.evaluation.estimated`; with the lake and the version's estimator);
* with labels: ``accuracy``, ``f1`` (binary: positive class; else macro), ``precision``,
  ``recall`` or ``mae``, ``rmse``, ``r2``; and ``labels``, the labelled count; ``roc_auc``
  for a binary model whose events carry a score (its schema's first score column); each with
  its confidence interval in ``detail`` (:mod:`watchkeeper.evaluation.performance`);
  and the window's failing slices, kept beside its points (``wk_window_slices``,
  :mod:`watchkeeper.evaluation.window_slices`; with the lake).

Drift uses the statistics core's calibrated decisions at the window's sample size. The
performance and latency metrics written are those of the catalogue
(:mod:`watchkeeper.evaluation.metrics`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from watchkeeper.evaluation.estimated import EstimatedPerformance
from watchkeeper.evaluation.joint import JointDrift
from watchkeeper.evaluation.metrics import latency
from watchkeeper.evaluation.performance import performance_points
from watchkeeper.evaluation.window_drift import (
    DriftCache,
    WindowSeries,
    point,
    profile_points,
    reference_of,
    with_series,
)
from watchkeeper.evaluation.window_slices import WindowSlices, write_slices
from watchkeeper.stats.operations import latency_quantile
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

log = logging.getLogger("watchkeeper.evaluate")


class Evaluator:
    def __init__(self, store: Store, lake_dir: Path | None = None) -> None:
        """``lake_dir``: the events' Parquet lake, where the window series that need the
        window's rows (``multivariate_pca``) read them; without it they are not written."""
        self.store = store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.windows_evaluated = 0
        self.errors = 0
        # the series of a window beyond its profile's, each a WindowSeries
        self.series: list[WindowSeries] = (
            [] if lake_dir is None else [JointDrift(lake_dir), EstimatedPerformance(lake_dir)]
        )
        # a labelled window's failing slices (they depend on its labels: never cached)
        self.slices = None if lake_dir is None else WindowSlices(lake_dir)
        # a window evaluated again for its labels keeps its drift (and its series)
        self.drift = DriftCache(series=self.series)
        # called after every pass (the alert engine): each reads what the pass wrote
        self.after_pass: list[Callable[[], None]] = []

    def start(
        self,
        interval: float,
        maintenance: Any = None,
        every: float = 600.0,
        gate: Callable[[], bool] | None = None,
    ) -> None:
        """Evaluate due windows every ``interval`` seconds; run ``maintenance()`` (retention)
        at start and every ``every`` seconds. ``gate``: whether this process is the one to
        evaluate now (of several replicas, the holder of the ``evaluator`` lease)."""

        def loop() -> None:
            last = 0.0
            while not self._stop.wait(interval):
                try:
                    if gate is not None and not gate():
                        last = 0.0  # on taking the lease over: retention at once
                        continue
                    if maintenance is not None and time.time() - last >= every:
                        last = time.time()
                        maintenance()
                    self.run_once()
                except Exception:
                    self.errors += 1
                    log.exception("evaluation failed")

        self._thread = threading.Thread(target=loop, name="wk-evaluator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _due(
        self, conn: sa.Connection, model: str, window: int, now: float, rolling: bool = False
    ) -> list[dict[str, Any]]:
        """Closed windows with a changed profile or new labels since their last evaluation.

        Which are due is found from the keys, flags and times alone; only the due windows'
        profiles and labels (and their rolling references) are read, so a pass with nothing
        to do does not read every profile the model kept."""
        bp, ev, perf = t.bucket_profiles.c, t.evaluations.c, t.bucket_performance.c
        closed = (bp.model == model) & (bp.granularity == window) & (bp.bucket + window <= now)
        rows = conn.execute(
            sa.select(bp.version, bp.segment, bp.bucket, bp.dirty).where(closed)
        ).all()
        done = {
            (r.version, r.segment, r.window_start): r.evaluated_at
            for r in conn.execute(
                sa.select(ev.version, ev.segment, ev.window_start, ev.evaluated_at).where(
                    ev.model == model
                )
            )
        }
        labelled = {
            (r.version, r.segment, r.bucket): r.updated_at
            for r in conn.execute(
                sa.select(perf.version, perf.segment, perf.bucket, perf.updated_at).where(
                    (perf.model == model) & (perf.granularity == window)
                )
            )
        }
        keys = []
        for version, segment, bucket, dirty in rows:
            last = done.get((version, segment, bucket))
            labels_at = labelled.get((version, segment, bucket))
            if last is None or dirty or (labels_at is not None and labels_at > last):
                keys.append((version, segment, bucket))

        def read(table: sa.Table, version: str, segment: str, bucket: int) -> Any:
            c = table.c
            where = (
                (c.model == model)
                & (c.version == version)
                & (c.segment == segment)
                & (c.granularity == window)
                & (c.bucket == bucket)
            )
            return conn.execute(sa.select(table).where(where)).mappings().first()

        due = []
        for version, segment, bucket in keys:
            row = read(t.bucket_profiles, version, segment, bucket)
            if row is None:  # pragma: no cover - removed by retention meanwhile
                continue
            perf_row = read(t.bucket_performance, version, segment, bucket)
            # a rolling reference: the window before (none for the first one)
            ref = read(t.bucket_profiles, version, segment, bucket - window) if rolling else None
            due.append(
                {
                    **dict(row),
                    "performance_row": None if perf_row is None else dict(perf_row),
                    "reference_row": None if ref is None else dict(ref),
                }
            )
        return due

    def run_once(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        count = 0
        for info in self.store.models():
            with self.store.engine.connect() as conn:
                due = self._due(
                    conn,
                    info.name,
                    info.window_seconds,
                    now,
                    rolling=info.drift_reference == "previous_window",
                )
            for window in due:
                self._evaluate(info.name, info.window_seconds, window, now)
                count += 1
        self.windows_evaluated += count
        for hook in self.after_pass:
            hook()
        return count

    def _evaluate(self, model: str, window_seconds: int, row: dict[str, Any], now: float) -> None:
        """A window's points, its evaluation record and its clean flag: one transaction."""
        points, summary = window_points(self.store, model, row, self.drift)
        slices = None if self.slices is None else self.slices(self.store, model, row)
        key = {"model": model, "version": row["version"], "segment": row["segment"]}
        ev, bp = t.evaluations.c, t.bucket_profiles.c
        with self.store.write() as conn:
            write_points(conn, model, window_seconds, row, points)
            if slices is not None:
                write_slices(conn, slices)
            where = (
                (ev.model == model)
                & (ev.version == row["version"])
                & (ev.segment == row["segment"])
                & (ev.window_start == row["bucket"])
            )
            if not conn.execute(
                t.evaluations.update().where(where).values(evaluated_at=now, summary=summary)
            ).rowcount:
                conn.execute(
                    t.evaluations.insert().values(
                        **key, window_start=row["bucket"], evaluated_at=now, summary=summary
                    )
                )
            conn.execute(
                t.bucket_profiles.update()
                .where(
                    (bp.model == model)
                    & (bp.version == row["version"])
                    & (bp.segment == row["segment"])
                    & (bp.granularity == window_seconds)
                    & (bp.bucket == row["bucket"])
                )
                .values(dirty=False)
            )


def window_points(
    store: Store,
    model: str,
    row: dict[str, Any],
    cache: DriftCache | None = None,
    series: Sequence[WindowSeries] = (),
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The metric points of one bucket-profile row (a window, or a day), and a summary.

    ``row`` may carry ``performance_row`` (the bucket's labels) and ``reference_row`` (the
    bucket profile to compare with instead of the training reference: the previous window,
    for models that drift against a rolling reference). The profile's points (drift,
    missing shares, and those of the cache's series) come from ``cache`` when it holds them
    for the same profiles; without a cache, ``series`` adds its points."""
    if cache is None:
        drift = with_series(profile_points(store, model, row), store, model, row, series)
    else:
        drift = cache.points(store, model, row)
    points = list(drift.points)
    ops = row["operations"]
    points.append(point("count", "", ops["count"]))
    points.append(point("error_rate", "", ops["errors"] / ops["count"] if ops["count"] else None))
    for name, q in latency().items():
        points.append(point(name, "", latency_quantile(ops["latency_counts"], q)))
    perf = row.get("performance_row")
    if perf is not None and perf["labels"]:
        points.append(point("labels", "", perf["labels"]))
        for name, (value, detail) in performance_points(perf["aggregate"]).items():
            points.append(point(name, "", value, detail))
    summary = {
        "drifted": drift.drifted,
        "checked": drift.checked,
        "events": ops["count"],
        "labels": 0 if perf is None else perf["labels"],
        **reference_of(row),
    }
    return points, summary


def write_points(
    conn: sa.Connection,
    model: str,
    window_seconds: int,
    row: dict[str, Any],
    points: list[dict[str, Any]],
) -> None:
    """Replace the metric points of one bucket (per version, segment and bucket length), in
    the caller's write transaction."""
    key = {"model": model, "version": row["version"], "segment": row["segment"]}
    mp = t.metric_points.c
    conn.execute(
        t.metric_points.delete().where(
            (mp.model == model)
            & (mp.version == row["version"])
            & (mp.segment == row["segment"])
            & (mp.window_start == row["bucket"])
            & (mp.window_seconds == window_seconds)
        )
    )
    conn.execute(
        t.metric_points.insert(),
        [
            {**key, "window_start": row["bucket"], "window_seconds": window_seconds, **p}
            for p in points
        ],
    )


def series(
    store: Store,
    model: str,
    metric: str,
    *,
    feature: str = "",
    version: str | None = None,
    segment: str | None = None,
    start: float | None = None,
    end: float | None = None,
) -> list[dict[str, Any]]:
    """Metric points of one metric over time, oldest first."""
    mp = t.metric_points.c
    q = sa.select(t.metric_points).where(
        (mp.model == model) & (mp.metric == metric) & (mp.feature == feature)
    )
    if version is not None:
        q = q.where(mp.version == version)
    q = q.where(mp.segment == (segment if segment is not None else _default_segment(store, model)))
    if start is not None:
        q = q.where(mp.window_start >= start)
    if end is not None:
        q = q.where(mp.window_start < end)
    with store.engine.connect() as conn:
        return [
            {
                k: r[k]
                for k in ("version", "segment", "window_start", "window_seconds", "value", "detail")
            }
            for r in conn.execute(q.order_by(mp.window_start)).mappings()
        ]


def _default_segment(store: Store, model: str) -> str:
    return "*" if store.model(model).segments else ""


def latest(store: Store, model: str) -> dict[str, Any] | None:
    """The newest evaluated window of the model's champion (all segments) and its points."""
    info = store.model(model)
    seg = _default_segment(store, model)
    ev, mp = t.evaluations.c, t.metric_points.c
    with store.engine.connect() as conn:
        row = (
            conn.execute(
                sa.select(t.evaluations)
                .where(
                    (ev.model == model)
                    & (ev.segment == seg)
                    & (ev.version == (info.champion or ""))
                )
                .order_by(ev.window_start.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        pts = (
            conn.execute(
                sa.select(t.metric_points).where(
                    (mp.model == model)
                    & (mp.version == row["version"])
                    & (mp.segment == seg)
                    & (mp.window_start == row["window_start"])
                )
            )
            .mappings()
            .all()
        )
    return {
        "version": row["version"],
        "window_start": row["window_start"],
        "window_seconds": info.window_seconds,
        "evaluated_at": row["evaluated_at"],
        "summary": row["summary"],
        "metrics": [
            {
                "metric": p["metric"],
                "feature": p["feature"],
                "value": p["value"],
                "detail": p["detail"],
            }
            for p in pts
        ],
    }
