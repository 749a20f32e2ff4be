"""``/metrics`` in the Prometheus exposition format, following its naming rules.

Series (label sets are bounded: models × versions × a fixed status set):

* ``watchkeeper_predictions_total{model,version,status}`` — processed events, status ok/error;
* ``watchkeeper_prediction_latency_seconds{model,version}`` — histogram of reported latency;
* ``watchkeeper_ingest_events_total{model}``, ``watchkeeper_quarantined_events_total{model}``,
  ``watchkeeper_duplicate_events_total{model}``, ``watchkeeper_actuals_total{model}``;
* ``watchkeeper_ingest_pending_events`` — events acknowledged but not yet processed;
* ``watchkeeper_processor_batches_total``, ``watchkeeper_processor_errors_total``;
* from the latest evaluated window of each model's champion:
  ``watchkeeper_feature_drift_statistic{model,feature}`` and
  ``watchkeeper_feature_drift_threshold{model,feature}`` (features of the schema: bounded),
  ``watchkeeper_drifted_features_share{model}``, ``watchkeeper_model_metric{model,metric}``
  (accuracy, f1, precision, recall, mae, rmse, r2, count, labels, error_rate, latency
  quantiles in seconds): each window metric as its catalogue entry's ``exports`` say
  (:mod:`watchkeeper.evaluation.metrics`); ``watchkeeper_window_start_seconds{model}``;
* alerts: ``watchkeeper_alerts_firing{model,severity}`` and
  ``watchkeeper_alert_delivery_failures_total{notifier}`` (failed attempts, from the outbox).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from watchkeeper.evaluation.evaluate import latest
from watchkeeper.evaluation.metrics import CATALOGUE
from watchkeeper.ingest.processor import LATENCY_BOUNDS, merge_operations
from watchkeeper.store.state import Store

COUNTERS = {
    "events_total": ("watchkeeper_ingest_events", "Events acknowledged (stored durably)."),
    "quarantined_total": ("watchkeeper_quarantined_events", "Events rejected by validation."),
    "duplicates_total": (
        "watchkeeper_duplicate_events",
        "Events dropped as retries of stored ids.",
    ),
    "actuals_total": ("watchkeeper_actuals", "Ground-truth labels joined to a prediction."),
}


class _Collector:
    def __init__(self, store: Store, processor: Any) -> None:
        self.store, self.processor = store, processor

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
        window = GaugeMetricFamily(
            "watchkeeper_window_start_seconds",
            "Start of the latest evaluated window (Unix time).",
            labels=["model"],
        )
        for info in self.store.models():
            counters = self.store.counters(info.name)
            for key, family in families.items():
                family.add_metric([info.name], counters.get(key, 0))
            per_version: dict[str, dict[str, Any]] = {}
            top = "*" if info.segments else ""
            for row in self.store.bucket_profiles(info.name, granularity=86400, segment=top):
                per_version[row["version"]] = merge_operations(
                    per_version.get(row["version"]), row["operations"]
                )
            last = latest(self.store, info.name)
            if last is not None:
                window.add_metric([info.name], last["window_start"])
                for m in last["metrics"]:
                    if m["value"] is not None:
                        _export(exported, info.name, m)
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
        yield window
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
        yield CounterMetricFamily(
            "watchkeeper_processor_errors",
            "Batch processing failures since start.",
            value=self.processor.errors,
        )
        yield from _alert_families(self.store)


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
    families: Mapping[str, GaugeMetricFamily], model: str, point: Mapping[str, Any]
) -> None:
    """Add a point of the newest window to the families its catalogue entry exports it in."""
    metric = CATALOGUE.get(point["metric"])
    for export in () if metric is None else metric.exports:
        value = point["value"]
        if export.detail is not None:
            value = (point.get("detail") or {}).get(export.detail)
            if value is None:
                continue
        names = {"model": model, "feature": point["feature"], "metric": point["metric"]}
        families[export.name].add_metric([names[label] for label in export.labels], value)


def _alert_families(store: Store) -> Iterator[Metric]:
    from watchkeeper.alerts.queries import delivery_failures, firing_counts

    firing = GaugeMetricFamily(
        "watchkeeper_alerts_firing",
        "Alerts firing now.",
        labels=["model", "severity"],
    )
    for (model, severity), count in sorted(firing_counts(store).items()):
        firing.add_metric([model, severity], count)
    failures = CounterMetricFamily(
        "watchkeeper_alert_delivery_failures",
        "Failed attempts to deliver an alert notice, per notifier.",
        labels=["notifier"],
    )
    for notifier, count in sorted(delivery_failures(store).items()):
        failures.add_metric([notifier], count)
    yield firing
    yield failures


def render_metrics(store: Store, processor: Any) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(store, processor))
    return generate_latest(registry), CONTENT_TYPE_LATEST
