"""What the overview and the model page show, computed from the store (no HTML here).

A page's time series come from the metric points the evaluator wrote, one point per window;
above :data:`MAX_POINTS` windows they are averaged in runs of consecutive windows so a chart
stays light. The features table describes the newest window of the range, with a sparkline of
the drift statistic over the whole range (:func:`queries.sample` windows of it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import numpy as np

from watchkeeper.charts_time import time_series_spec
from watchkeeper.errors import InputError
from watchkeeper.evaluation import metrics as catalogue
from watchkeeper.quality import column_quality
from watchkeeper.schema import ColumnType, Role
from watchkeeper.server.dashboard import queries
from watchkeeper.server.dashboard.filters import (
    TimeRange,
    default_segment,
    parse_range,
    pick_segment,
    pick_version,
)
from watchkeeper.server.dashboard.render import figure_json, sparkline
from watchkeeper.store.state import ModelInfo, NotFoundError, Store

MAX_POINTS = 1000
# the catalogue's metrics the model page charts
CLASSIFICATION = tuple(m.name for m in catalogue.performance("classification") if m.dashboard)
REGRESSION = tuple(m.name for m in catalogue.performance("regression") if m.dashboard)
LATENCY = tuple(catalogue.latency())
SORTS = {
    "feature": "feature name",
    "statistic": "drift statistic",
    "effect": "effect size",
    "missing": "missing share",
    "type_errors": "type errors",
    "unseen": "unseen values",
}


@dataclass(frozen=True)
class PageParams:
    """The query parameters of a model or feature page."""

    range: str | None = None
    start: str | None = None
    end: str | None = None
    version: str | None = None
    segment: str | None = None
    sort: str | None = None
    order: str | None = None
    window: str | None = None

    def query(self) -> dict[str, str]:
        """The parameters to keep in links (sorting aside)."""
        keep = ("range", "start", "end", "version", "segment")
        return {k: v for k in keep if (v := getattr(self, k))}


@dataclass(frozen=True)
class Context:
    """A model page's model, version, segment and time range, resolved and checked."""

    info: ModelInfo
    versions: list[dict[str, Any]]
    version: str
    segments: list[str]
    segment: str
    range: TimeRange
    scope: queries.Scope


def resolve(store: Store, model: str, params: PageParams) -> Context:
    info = store.model(model)
    versions = store.versions(model)
    version = pick_version(info, [v["version"] for v in versions], params.version)
    known = queries.segments(store, model)
    segment = pick_segment(info, known, params.segment)
    default = default_segment(info)
    listed = [default, *(s for s in known if s != default)]
    rng = parse_range(params.range, params.start, params.end, time.time())
    scope = queries.Scope(model, version, segment, rng.start, rng.end)
    return Context(info, versions, version, listed, segment, rng, scope)


def downsample(
    times: Sequence[int], columns: Mapping[str, Sequence[float | None]], limit: int = MAX_POINTS
) -> tuple[list[int], dict[str, list[float | None]], int]:
    """Average runs of consecutive windows so at most ``limit`` points remain; returns the
    times (each run's first window), the averaged columns and the run length.

    >>> downsample([0, 1, 2, 3], {"a": [1.0, 3.0, None, 5.0]}, limit=2)
    ([0, 2], {'a': [2.0, 5.0]}, 2)
    """
    run = max(1, math.ceil(len(times) / limit))
    if run == 1:
        return list(times), {k: list(v) for k, v in columns.items()}, 1
    out: dict[str, list[float | None]] = {}
    for name, values in columns.items():
        arr = np.array([np.nan if v is None else v for v in values], dtype=float)
        means = []
        for i in range(0, len(arr), run):
            chunk = arr[i : i + run]
            finite = chunk[np.isfinite(chunk)]
            means.append(float(finite.mean()) if finite.size else None)
        out[name] = means
    return list(times[::run]), out, run


def _chart(
    key: str,
    title: str,
    times: list[int],
    columns: Mapping[str, Sequence[float | None]],
    **kwargs: Any,
) -> dict[str, Any]:
    present = {k: v for k, v in columns.items() if any(x is not None for x in v)}
    if not present:
        return {"key": key, "title": title, "figure": None}
    xs, ys, run = downsample(times, present)
    figure = time_series_spec(xs, ys, **kwargs)
    note = f"each point averages {run} windows" if run > 1 else ""
    return {"key": key, "title": title, "figure": figure_json(figure), "note": note}


def task(store: Store, model: str, version: str) -> str:
    """``regression`` when the version's target is numeric, else ``classification``."""
    schema, _ = store.reference(model, version)
    targets = schema.by_role(Role.TARGET)
    numeric = bool(targets) and targets[0].type == ColumnType.NUMERIC
    return "regression" if numeric else "classification"


def model_series(
    store: Store, ctx: Context, summaries: Mapping[int, Mapping[str, Any]]
) -> dict[str, Any]:
    """The model page's series: volume, labels and drifted share from the evaluations'
    summaries; error rate, latency and (when there are labels) performance from the metric
    points."""
    times = sorted(summaries)
    data: dict[str, dict[int, float | None]] = {
        "count": {w: summaries[w].get("events") for w in times},
        "labels": {w: summaries[w].get("labels") for w in times},
        "drifted_share": {
            w: s["drifted"] / s["checked"] if s.get("checked") else None
            for w, s in ((w, summaries[w]) for w in times)
        },
    }
    perf = REGRESSION if task(store, ctx.info.name, ctx.version) == "regression" else CLASSIFICATION
    labelled = any(v for v in data["labels"].values())
    metrics = ("error_rate", *LATENCY, *(perf if labelled else ()))
    data |= queries.scalar_series(store, ctx.scope, metrics)
    for m in perf:
        data.setdefault(m, {})
    return {"data": data, "times": times, "performance": perf}


def model_charts(
    series: Mapping[str, Any],
    performance: Sequence[dict[str, Any]] = (),
    outputs: Sequence[dict[str, Any]] = (),
    marks: Sequence[tuple[float, str]] = (),
) -> list[dict[str, Any]]:
    """The model page's charts, with its ``performance`` charts, and the joint drift and the
    prediction drift of its ``outputs`` (:mod:`watchkeeper.server.dashboard.performance_view`)
    in place; ``marks``
    (promotions) are drawn on each chart's time axis."""
    data, times = series["data"], series["times"]

    def col(metric: str, scale: float = 1.0) -> list[float | None]:
        values = [data[metric].get(w) for w in times]
        return [None if v is None else v * scale for v in values]

    def cols(*metrics: str) -> dict[str, list[float | None]]:
        """Each metric's series under its label, in the unit its format shows (ms: × 1000)."""
        return {
            catalogue.label(m): col(m, 1000.0 if catalogue.CATALOGUE[m].format == "ms" else 1.0)
            for m in metrics
        }

    return [
        _chart("volume", "Volume", times, cols("count"), bars=True, y_title="events", marks=marks),
        _chart("latency", "Latency", times, cols(*LATENCY), y_title="ms", marks=marks),
        _chart("errors", "Error rate", times, cols("error_rate"), y_format=".1%", marks=marks),
        *performance,
        _chart(
            "drift", "Drifted features", times, cols("drifted_share"), y_format=".0%", marks=marks
        ),
        *outputs,
    ]


def feature_names(store: Store, model: str, version: str) -> list[tuple[str, str]]:
    """(name, type) of the version's input columns that get a profile — features and
    segment columns, as the evaluator checks both for drift — in schema order."""
    schema, _ = store.reference(model, version)
    profiled = (ColumnType.NUMERIC, ColumnType.CATEGORICAL)
    return [
        (c.name, str(c.type))
        for c in schema.columns.values()
        if c.role in (Role.FEATURE, Role.SEGMENT) and c.type in profiled
    ]


COLUMNS = (  # (sort key or '', header, cell class) of the features table
    ("feature", "Feature", ""),
    ("", "Type", ""),
    ("statistic", "Statistic / threshold", "n"),
    ("", "Drift", ""),
    ("effect", "Effect", "n"),
    ("", "Trend", ""),
    ("missing", "Missing", "n"),
    ("type_errors", "Type errors", "n"),
    ("unseen", "Unseen / out of range", "n"),
    ("", "Unseen values", ""),
)


def table_columns(table: Mapping[str, Any], keep: Mapping[str, str]) -> list[dict[str, Any]]:
    """The features table's headers; a sortable one links to its sort, reversed when the
    table is sorted by it already (names start ascending, numbers descending)."""
    out = []
    for key, label, cls in COLUMNS:
        here = bool(key) and table["sort"] == key
        href = ""
        if key:
            first = "asc" if key == "feature" else "desc"
            order = ("desc" if table["order"] == "asc" else "asc") if here else first
            href = "?" + urlencode({**keep, "sort": key, "order": order})
        out.append({"key": key, "label": label, "cls": cls, "href": href, "sorted": here})
    return out


def _sort_key(key: str, row: Mapping[str, Any]) -> tuple[int, Any]:
    value = {
        "feature": row["name"],
        "statistic": row["statistic"],
        "effect": row["effect"],
        "missing": row["missing"],
        "type_errors": row["type_errors"],
        "unseen": row["unseen"],
    }[key]
    return (1, 0) if value is None else (0, value)


def features_table(
    store: Store, ctx: Context, windows: list[int], sort: str | None, order: str | None
) -> dict[str, Any]:
    """The features table: the newest window of the range, sparklines over the range."""
    if sort is not None and sort not in SORTS:
        raise InputError(f"query parameter sort: {sort!r}; use one of {', '.join(SORTS)}")
    if order not in (None, "asc", "desc"):
        raise InputError(f"query parameter order: {order!r}; use asc or desc")
    names = feature_names(store, ctx.info.name, ctx.version)
    latest = windows[-1] if windows else None
    points: dict[tuple[str, str], tuple[float | None, Any]] = {}
    quality: dict[str, dict[str, Any]] = {}
    impact: list[dict[str, Any]] = []
    if latest is not None:
        for metric, feature, value, detail in queries.window_points(
            store, ctx.scope, latest, ("drift_statistic", "missing_share", "drifted_share")
        ):
            points[(metric, feature)] = (value, detail)
            if metric == "drifted_share" and isinstance(detail, dict):
                impact = list(detail.get("drift_impact") or [])
        profile = queries.window_profile(store, ctx.scope, ctx.info.window_seconds, latest)
        if profile is not None:
            quality = {n: column_quality(p) for n, p in profile.columns.items()}
    sampled = queries.sample(windows)
    sparks = queries.sampled_series(store, ctx.scope, "drift_statistic", sampled)
    rows = []
    for name, kind in names:
        stat, detail = points.get(("drift_statistic", name), (None, None))
        detail = detail if isinstance(detail, dict) else {}
        missing = points.get(("missing_share", name), (None, None))[0]
        q = quality.get(name, {})
        series = sparks.get(name, {})
        rows.append(
            {
                "name": name,
                "type": kind,
                "statistic": stat,
                "threshold": detail.get("threshold"),
                "drifted": detail.get("drifted"),
                "method": detail.get("method"),
                "effect": detail.get("effect_size"),
                "missing": missing if missing is not None else q.get("missing_share"),
                "type_errors": q.get("type_errors"),
                "unseen": q.get("unseen") if kind == "categorical" else q.get("out_of_range"),
                "unseen_examples": [str(v) for v in q.get("top_unseen", [])][:3],
                "spark": sparkline(
                    [series.get(w) for w in sampled],
                    threshold=detail.get("threshold"),
                    alarm=bool(detail.get("drifted")),
                ),
            }
        )
    key = sort or "effect"
    descending = (order or ("asc" if key == "feature" else "desc")) == "desc"
    present = [r for r in rows if _sort_key(key, r)[0] == 0]
    absent = [r for r in rows if _sort_key(key, r)[0] == 1]
    present.sort(key=lambda r: _sort_key(key, r)[1], reverse=descending)
    return {
        "rows": present + absent,
        "sort": key,
        "order": "desc" if descending else "asc",
        "window": latest,
        "spark_windows": len(sampled),
        "drifted": sum(1 for r in rows if r["drifted"]),
        # the drifted features by drift x attribution share (docs/explain.md), when the
        # version has attribution shares
        "impact": impact,
    }


def _last(series: Mapping[int, float | None]) -> tuple[int, float] | None:
    for w in sorted(series, reverse=True):
        value = series[w]
        if value is not None:
            return w, value
    return None


def cards(series: Mapping[str, Any], ctx: Context, table: Mapping[str, Any]) -> dict[str, Any]:
    """The headline figures of the range: newest values and totals."""
    data = series["data"]
    perf = series["performance"]
    headline = next((m for m in perf if data[m]), None)
    return {
        "windows": len(series["times"]),
        "events": sum(v for v in data["count"].values() if v is not None),
        "labels": sum(v for v in data["labels"].values() if v is not None),
        "drifted_share": _last(data["drifted_share"]),
        "drifted": table["drifted"],
        "checked": sum(1 for r in table["rows"] if r["statistic"] is not None),
        "performance": None if headline is None else (headline, _last(data[headline])),
        "latency_p95": _last(data["latency_p95"]),
        "error_rate": _last(data["error_rate"]),
    }


def overview(store: Store, alerts_firing: Mapping[str, int] | None) -> list[dict[str, Any]]:
    """One row per model: the newest window of its champion, all segments."""
    rows = []
    for info in store.models():
        versions = store.versions(info.name)
        row: dict[str, Any] = {"name": info.name, "champion": info.champion}
        row |= {"versions": len(versions), "window_seconds": info.window_seconds}
        row["alerts"] = None if alerts_firing is None else alerts_firing.get(info.name, 0)
        if not versions:
            rows.append(row | {"latest": None})
            continue
        version = info.champion or versions[-1]["version"]
        scope = queries.Scope(info.name, version, default_segment(info))
        latest = queries.latest_window(store, scope)
        row["latest"] = latest
        if latest is not None:
            start = latest - 47 * info.window_seconds
            recent = queries.Scope(scope.model, version, scope.segment, start, latest + 1)
            metrics = ("count", "error_rate", "latency_p95", "drifted_share", "accuracy", "r2")
            data = queries.scalar_series(store, recent, metrics)
            day = latest - 23 * info.window_seconds
            row["events_24h"] = sum(v or 0 for w, v in data["count"].items() if w >= day)
            row["drifted_share"] = data["drifted_share"].get(latest)
            row["error_rate"] = data["error_rate"].get(latest)
            row["latency_p95"] = data["latency_p95"].get(latest)
            perf = "accuracy" if data["accuracy"] else "r2"
            row["performance"] = (perf, _last(data[perf]))
            starts = sorted(data["drifted_share"])
            row["spark"] = sparkline([data["drifted_share"][w] for w in starts])
        rows.append(row)
    return rows


def version_rows(store: Store, info: ModelInfo) -> list[dict[str, Any]]:
    rows = []
    for v in store.versions(info.name):
        try:
            schema, _ = store.reference(info.name, v["version"])
        except NotFoundError:  # pragma: no cover - removed meanwhile
            continue
        roles: dict[str, list[str]] = {}
        for c in schema.columns.values():
            roles.setdefault(str(c.role), []).append(c.name)
        rows.append({**v, "champion": v["version"] == info.champion, "roles": roles})
    return rows
