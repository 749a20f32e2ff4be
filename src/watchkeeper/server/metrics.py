"""``/metrics`` in the Prometheus exposition format, following its naming rules.

Each family has one unit, named by its suffix (``_seconds``, ``_ratio``; ``_total`` on
counters only). Label sets are bounded: models × versions × a fixed status set, the features
of each schema, the fixed latency percentiles and severities, the configured notifiers.

* ``watchkeeper_predictions_total{model,version,status}`` — processed events, status ok/error;
* ``watchkeeper_prediction_latency_seconds{model,version}`` — histogram of reported latency;
* ``watchkeeper_ingest_events_total{model}``, ``watchkeeper_quarantined_events_total{model}``,
  ``watchkeeper_duplicate_events_total{model}``, ``watchkeeper_actuals_total{model}``,
  ``watchkeeper_dead_lettered_batches_total{model}``;
* ``watchkeeper_ingest_pending_events`` — events acknowledged but not yet processed;
* ``watchkeeper_processor_batches_total``, ``watchkeeper_processor_errors_total``,
  ``watchkeeper_processor_ready`` (1 once the processor has started);
* the window metrics, each in the families its catalogue entry's ``exports`` name
  (:mod:`watchkeeper.evaluation.metrics`), labelled with the model and the ``version`` of the
  window (the champion's: one version per model): drift, data quality and operations from the
  champion's newest evaluated window (``watchkeeper_window_start_seconds{model,version}``),
  performance from its newest window that has labels
  (``watchkeeper_performance_window_start_seconds{model,version}``), so accuracy stays on
  ``/metrics`` while labels lag and its age shows how far they lag;
* alerts: ``watchkeeper_alerts_firing{model,severity}`` (0 when none fires) and
  ``watchkeeper_alert_delivery_failures_total{notifier}`` (failed attempts, from the outbox).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from watchkeeper.evaluation.metrics import CATALOGUE
from watchkeeper.stats.operations import LATENCY_BOUNDS, merge_operations
from watchkeeper.store import tables as t
from watchkeeper.store.state import ModelInfo, Store

COUNTERS = {
    "events_total": ("watchkeeper_ingest_events", "Events acknowledged (stored durably)."),
    "quarantined_total": ("watchkeeper_quarantined_events", "Events rejected by validation."),
    "violations_total": (
        "watchkeeper_rule_violation_events",
        "Events accepted although they break a validation rule (on_violation: count).",
    ),
    "duplicates_total": (
        "watchkeeper_duplicate_events",
        "Events dropped as retries of stored ids.",
    ),
    "actuals_total": ("watchkeeper_actuals", "Ground-truth labels joined to a prediction."),
    "dead_lettered_batches_total": (
        "watchkeeper_dead_lettered_batches",
        "Logged batches the processor could not process, moved to the dead letters.",
    ),
}

# the start of the newest window (False) and of the newest labelled window (True)
STARTS = {
    False: ("watchkeeper_window_start_seconds", "Start of the newest evaluated window"),
    True: (
        "watchkeeper_performance_window_start_seconds",
        "Start of the newest evaluated window that has labels",
    ),
}


def newest_window(store: Store, info: ModelInfo, *, labelled: bool) -> dict[str, Any] | None:
    """The champion's newest evaluated window over all segments (or the newest with labels):
    its version, start and metric points."""
    version, segment = info.champion or "", "*" if info.segments else ""
    ev, mp = t.evaluations.c, t.metric_points.c
    if labelled:  # the window of the newest positive "labels" point
        q = sa.select(sa.func.max(mp.window_start)).where(
            (mp.model == info.name)
            & (mp.metric == "labels")
            & (mp.version == version)
            & (mp.segment == segment)
            & (mp.value > 0)
        )
    else:
        q = sa.select(sa.func.max(ev.window_start)).where(
            (ev.model == info.name) & (ev.version == version) & (ev.segment == segment)
        )
    with store.engine.connect() as conn:
        start = conn.execute(q).scalar()
        if start is None:
            return None
        points = conn.execute(
            sa.select(mp.metric, mp.feature, mp.value, mp.detail).where(
                (mp.model == info.name)
                & (mp.version == version)
                & (mp.segment == segment)
                & (mp.window_start == start)
            )
        )
        return {"version": version, "window_start": start, "points": list(points.mappings())}


class _Collector:
    def __init__(self, store: Store, processor: Any, shadow: Any = None) -> None:
        self.store, self.processor, self.shadow = store, processor, shadow

    def collect(self) -> Iterator[Metric]:
        predictions = CounterMetricFamily(
            "watchkeeper_predictions",
            "Processed prediction events.",
            labels=["model", "version", "status"],
        )
        latency = HistogramMetricFamily(
            "watchkeeper_prediction_latency_seconds",
            "Prediction latency reported by the model service.",
            labels=["model", "version"],
        )
        families = {
            k: CounterMetricFamily(n, h, labels=["model"]) for k, (n, h) in COUNTERS.items()
        }
        exported = _window_families()
        starts = {
            labelled: GaugeMetricFamily(name, text + " (Unix time).", labels=["model", "version"])
            for labelled, (name, text) in STARTS.items()
        }
        for info in self.store.models():
            counters = self.store.counters(info.name)
            for key, counter in families.items():
                counter.add_metric([info.name], counters.get(key, 0))
            per_version: dict[str, dict[str, Any]] = {}
            top = "*" if info.segments else ""
            for row in self.store.bucket_profiles(info.name, granularity=86400, segment=top):
                per_version[row["version"]] = merge_operations(
                    per_version.get(row["version"]), row["operations"]
                )
            for labelled, start in starts.items():
                window = newest_window(self.store, info, labelled=labelled)
                if window is not None:
                    start.add_metric([info.name, window["version"]], window["window_start"])
                    _export(exported, info.name, window, labelled=labelled)
            for version, ops in per_version.items():
                predictions.add_metric([info.name, version, "ok"], ops["count"] - ops["errors"])
                predictions.add_metric([info.name, version, "error"], ops["errors"])
                cumulative, buckets = 0, []
                for bound, count in zip(
                    (*LATENCY_BOUNDS, float("inf")), ops["latency_counts"], strict=True
                ):
                    cumulative += count
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
                latency.add_metric([info.name, version], buckets, ops["latency_sum"])
        yield predictions
        yield latency
        yield from families.values()
        yield from exported.values()
        yield from starts.values()
        yield GaugeMetricFamily(
            "watchkeeper_ingest_pending_events",
            "Events acknowledged, not yet processed.",
            value=self.store.pending_events(),
        )
        yield CounterMetricFamily(
            "watchkeeper_processor_batches",
            "Batches processed since start.",
            value=self.processor.batches_processed,
        )
        yield GaugeMetricFamily(
            "watchkeeper_processor_ready",
            "1 once the processor has started (its process is up, its modules loaded).",
            value=int(getattr(self.processor, "ready", True)),
        )
        yield CounterMetricFamily(
            "watchkeeper_processor_errors",
            "Batch processing failures since start.",
            value=self.processor.errors,
        )
        yield from _alert_families(self.store)
        if self.shadow is not None:  # promotion.shadow.ShadowQueue: this process's copies
            dropped = CounterMetricFamily(
                "watchkeeper_shadow_dropped",
                "Shadow copies dropped because the queue was full, since start.",
                labels=["model"],
            )
            scored = CounterMetricFamily(
                "watchkeeper_shadow_scored",
                "Requests scored by the shadow challengers, since start.",
                labels=["model"],
            )
            for model, counts in sorted(self.shadow.counts().items()):
                dropped.add_metric([model], counts["dropped"])
                scored.add_metric([model], counts["scored"])
            yield dropped
            yield scored


def _window_families() -> dict[str, GaugeMetricFamily]:
    """The families of the window metrics' exports, empty, in catalogue order."""
    families: dict[str, GaugeMetricFamily] = {}
    for metric in CATALOGUE.values():
        for export in metric.exports:
            if export.name not in families:
                families[export.name] = GaugeMetricFamily(
                    export.name, export.help, labels=list(export.labels)
                )
    return families


def _export(
    families: Mapping[str, GaugeMetricFamily],
    model: str,
    window: Mapping[str, Any],
    *,
    labelled: bool,
) -> None:
    """Add the points of a window to the families their catalogue entries export them in:
    those of the metrics whose sample is the labels from the newest labelled window, the
    others from the newest window."""
    for point in window["points"]:
        metric = CATALOGUE.get(point["metric"])
        if metric is None or (metric.sample == "labels") != labelled:
            continue
        for export in metric.exports:
            value = point["value"]
            if export.detail is not None:
                value = (point["detail"] or {}).get(export.detail)
            if value is None:
                continue
            names = {
                "model": model,
                "version": window["version"],
                "feature": point["feature"],
                "percentile": metric.percentile,
            }
            families[export.name].add_metric([names[label] for label in export.labels], value)


def _alert_families(store: Store) -> Iterator[Metric]:
    from watchkeeper.alerts.monitors import SEVERITIES
    from watchkeeper.alerts.queries import delivery_failures, firing_counts

    firing = GaugeMetricFamily(
        "watchkeeper_alerts_firing",
        "Alerts firing now.",
        labels=["model", "severity"],
    )
    counts = firing_counts(store)
    models = sorted({info.name for info in store.models()} | {m for m, _ in counts})
    for model in models:  # every severity of every model, 0 when none fires
        for severity in SEVERITIES:
            firing.add_metric([model, severity], counts.get((model, severity), 0))
    failures = CounterMetricFamily(
        "watchkeeper_alert_delivery_failures",
        "Failed attempts to deliver an alert notice, per notifier.",
        labels=["notifier"],
    )
    for notifier, count in sorted(delivery_failures(store).items()):
        failures.add_metric([notifier], count)
    yield firing
    yield failures


def render_metrics(store: Store, processor: Any, shadow: Any = None) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(store, processor, shadow))
    return generate_latest(registry), CONTENT_TYPE_LATEST
