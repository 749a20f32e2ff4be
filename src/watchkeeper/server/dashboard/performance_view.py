"""The model page's performance charts and its prediction drift, computed from the store.

Each performance metric gets its own chart: the window values, their confidence interval as a
shaded band (the points' ``detail``, :mod:`watchkeeper.evaluation.performance`) and the
version's training baseline as a dotted horizontal line when its reference had labels.

The joint drift (``multivariate_pca``: a change in how the features move together) gets one
chart with its calibrated threshold, drifted windows marked, when the version has that series.

The prediction's own drift — each model output (the prediction and score columns) against its
reference distribution — gets a chart per output with its calibrated threshold, and a card;
it is kept apart from the features' drift counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watchkeeper.charts_time import time_series_spec
from watchkeeper.evaluation import metrics as catalogue
from watchkeeper.evaluation.names import features_of
from watchkeeper.evaluation.performance import LEVEL, baseline
from watchkeeper.server.dashboard import queries
from watchkeeper.server.dashboard.render import figure_json
from watchkeeper.server.dashboard.views import Context, downsample
from watchkeeper.store.state import Store

__all__ = ["joint_drift", "performance_charts", "prediction_drift"]

BAND = f"{LEVEL:.0%} interval"
BASELINE = "training baseline"


def _note(run: int) -> str:
    return f"each point averages {run} windows" if run > 1 else ""


def performance_charts(
    store: Store,
    ctx: Context,
    times: Sequence[int],
    metrics: Sequence[str],
    *,
    percent: bool,
    marks: Sequence[tuple[float, str]] = (),
) -> list[dict[str, Any]]:
    """A chart per performance metric that has a value in the range, with ``marks``
    (promotions) on its time axis; one empty chart when none has (no labels yet)."""
    data = queries.detail_series(store, ctx.scope, metrics) if metrics else {}
    charts = []
    for metric in metrics:
        points = data.get(metric, {})
        values = [points.get(w, (None, None)) for w in times]
        if all(v is None for v, _ in values):
            continue
        details = [d if isinstance(d, dict) else {} for _, d in values]
        columns = {
            "value": [v for v, _ in values],
            "low": [d.get("low") for d in details],
            "high": [d.get("high") for d in details],
        }
        xs, ys, run = downsample(times, columns)
        base = baseline(store, ctx.info.name, metric, ctx.version)
        figure = time_series_spec(
            xs,
            {catalogue.label(metric): ys["value"]},
            y_format=".2f" if metric == "roc_auc" else (".0%" if percent else ".3g"),
            band=(ys["low"], ys["high"]),
            band_name=BAND,
            baseline=base[0]["value"] if base else None,
            baseline_name=BASELINE,
            marks=marks,
        )
        charts.append(
            {
                "key": f"performance-{metric}",
                "title": f"Performance: {catalogue.label(metric)}",
                "figure": figure_json(figure),
                "note": _note(run),
            }
        )
    if not charts:
        return [{"key": "performance", "title": "Performance (from labels)", "figure": None}]
    return charts


def prediction_drift(
    store: Store, ctx: Context, times: Sequence[int], marks: Sequence[tuple[float, str]] = ()
) -> dict[str, Any]:
    """The prediction drift of each model output over the range: ``charts`` (with ``marks``,
    the promotions, on the time axis) and ``outputs`` (the newest window's statistic,
    threshold, decision and method of each)."""
    schema, _ = store.reference(ctx.info.name, ctx.version)
    charts, outputs, evaluated = [], [], set(times)
    for i, name in enumerate(features_of(schema, "prediction_drift")):
        series = queries.feature_series(store, ctx.scope, ("prediction_drift",), name)
        points = [p for p in series["prediction_drift"] if p[0] in evaluated]
        details = [d if isinstance(d, dict) else {} for _, _, d in points]
        newest = details[-1] if details else {}
        outputs.append(
            {
                "name": name,
                "statistic": points[-1][1] if points else None,
                "threshold": newest.get("threshold"),
                "drifted": newest.get("drifted"),
                "method": newest.get("method"),
                "window": points[-1][0] if points else None,
            }
        )
        key, title = f"prediction-drift-{i}", f"Prediction drift: {name}"
        if not points:
            charts.append({"key": key, "title": title, "figure": None})
            continue
        label = catalogue.label("prediction_drift")
        columns = {
            label: [v for _, v, _ in points],
            "threshold": [d.get("threshold") for d in details],
        }
        xs, ys, run = downsample([w for w, _, _ in points], columns)
        marked = [bool(d.get("drifted")) for d in details] if run == 1 else None
        figure = time_series_spec(
            xs, {label: ys[label]}, threshold=ys["threshold"], marked=marked, marks=marks
        )
        charts.append(
            {"key": key, "title": title, "figure": figure_json(figure), "note": _note(run)}
        )
    return {
        "charts": charts,
        "outputs": outputs,
        "drifted": sum(bool(o["drifted"]) for o in outputs),
    }


def joint_drift(
    store: Store, ctx: Context, times: Sequence[int], marks: Sequence[tuple[float, str]] = ()
) -> list[dict[str, Any]]:
    """The ``multivariate_pca`` chart over the range — the window's mean reconstruction error,
    its threshold dashed, drifted windows marked — or none when the range has no such point
    (a version without a PCA state: ``docs/service.md``)."""
    metric = "multivariate_pca"
    evaluated = set(times)
    points = [
        p
        for p in queries.feature_series(store, ctx.scope, (metric,), "")[metric]
        if p[0] in evaluated
    ]
    if not any(v is not None for _, v, _ in points):
        return []
    details = [d if isinstance(d, dict) else {} for _, _, d in points]
    label = catalogue.label(metric)
    columns = {
        label: [v for _, v, _ in points],
        "threshold": [d.get("threshold") for d in details],
    }
    xs, ys, run = downsample([w for w, _, _ in points], columns)
    marked = [bool(d.get("drifted")) for d in details] if run == 1 else None
    figure = time_series_spec(
        xs, {label: ys[label]}, threshold=ys["threshold"], marked=marked, marks=marks
    )
    title = "Joint drift: how the features move together"
    return [
        {"key": "joint-drift", "title": title, "figure": figure_json(figure), "note": _note(run)}
    ]
