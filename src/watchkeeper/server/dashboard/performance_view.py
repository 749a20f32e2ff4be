"""The model page's performance charts and its prediction drift, computed from the store.

Each performance metric gets its own chart: the window values, their confidence interval as a
shaded band (the points' ``detail``, :mod:`watchkeeper.evaluation.performance`) and the
version's training baseline as a dotted horizontal line when its reference had labels; next to
them the value estimated before the labels (``estimated_<metric>``,
:mod:`watchkeeper.evaluation.estimated`) with its own band, so the page shows how far the
estimate held once labels came.

The joint drift (``multivariate_pca``: a change in how the features move together) gets one
chart with its calibrated no-drift band (two-sided), drifted windows marked, when the version
has that series.

The prediction's own drift — each model output (the prediction and score columns) against its
reference distribution — gets a chart per output with its calibrated threshold, and a card;
it is kept apart from the features' drift counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watchkeeper.charts_time import time_series_spec
from watchkeeper.evaluation import metrics as catalogue
from watchkeeper.evaluation.metrics import CATALOGUE
from watchkeeper.evaluation.names import features_of
from watchkeeper.evaluation.performance import LEVEL, baseline
from watchkeeper.server.dashboard import queries
from watchkeeper.server.dashboard.render import figure_json
from watchkeeper.server.dashboard.views import Context, downsample
from watchkeeper.store.state import Store

__all__ = ["joint_drift", "performance_charts", "prediction_drift"]

BAND = f"{LEVEL:.0%} interval"
ESTIMATE_BAND = f"estimate's {LEVEL:.0%} interval"
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
    """A chart per performance metric that has a value in the range, realized or estimated
    before the labels (``estimated_<metric>``, with its own band), with ``marks`` (promotions)
    on its time axis; one empty chart when none has (no labels and no estimate yet)."""
    names = [*metrics, *(f"estimated_{m}" for m in metrics if f"estimated_{m}" in CATALOGUE)]
    data = queries.detail_series(store, ctx.scope, names) if metrics else {}
    charts = []
    for metric in metrics:
        realized = _columns(data.get(metric, {}), times)
        estimated = _columns(data.get(f"estimated_{metric}", {}), times)
        if all(v is None for v in (*realized["value"], *estimated["value"])):
            continue
        columns = {**realized, **{f"estimated_{k}": v for k, v in estimated.items()}}
        xs, ys, run = downsample(times, columns)
        base = baseline(store, ctx.info.name, metric, ctx.version)
        series = {catalogue.label(metric): ys["value"]}
        second = None
        if f"estimated_{metric}" in CATALOGUE:
            series[catalogue.label(f"estimated_{metric}")] = ys["estimated_value"]
            second = (ys["estimated_low"], ys["estimated_high"], ESTIMATE_BAND)
        figure = time_series_spec(
            xs,
            series,
            y_format=".2f" if metric == "roc_auc" else (".0%" if percent else ".3g"),
            band=(ys["low"], ys["high"]),
            band_name=BAND,
            second_band=second,
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


def _columns(points: dict[int, Any], times: Sequence[int]) -> dict[str, list[Any]]:
    """A series' values and interval ends over ``times`` (None where it has no point)."""
    values = [points.get(w, (None, None)) for w in times]
    details = [d if isinstance(d, dict) else {} for _, d in values]
    return {
        "value": [v for v, _ in values],
        "low": [d.get("low") for d in details],
        "high": [d.get("high") for d in details],
    }


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
    its upper threshold dashed over its shaded no-drift band (the decision is two-sided: a
    window below the band drifted too), drifted windows marked — or none when the range has no
    such point (a version without a PCA state: ``docs/service.md``)."""
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
        "lower": [d.get("lower_threshold") for d in details],  # None before the two-sided band
    }
    xs, ys, run = downsample([w for w, _, _ in points], columns)
    marked = [bool(d.get("drifted")) for d in details] if run == 1 else None
    figure = time_series_spec(
        xs,
        {label: ys[label]},
        threshold=ys["threshold"],
        band=(ys["lower"], ys["threshold"]),
        band_name="no-drift band",
        marked=marked,
        marks=marks,
    )
    title = "Joint drift: how the features move together"
    return [
        {"key": "joint-drift", "title": title, "figure": figure_json(figure), "note": _note(run)}
    ]
