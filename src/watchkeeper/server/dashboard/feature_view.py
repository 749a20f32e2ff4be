"""What the feature page shows: the reference against one window's distribution, the drift
statistic and the missing share over the range, and the data quality of both sides.

The distribution chart is the static report's (``charts.distribution_figure``) on the same
profiles the evaluator compared. For a categorical feature the most frequent values that the
reference never had are drawn as bars of their own, left of ``(other)``: they are what a
person wants to see first.
"""

from __future__ import annotations

from typing import Any

from watchkeeper import charts
from watchkeeper.charts_time import time_series_spec
from watchkeeper.errors import InputError
from watchkeeper.evaluation.metrics import label
from watchkeeper.quality import column_quality
from watchkeeper.server.dashboard import queries
from watchkeeper.server.dashboard.render import figure_json
from watchkeeper.server.dashboard.views import Context, downsample, feature_names
from watchkeeper.stats.categorical import CategoricalProfile
from watchkeeper.stats.numeric import NumericProfile
from watchkeeper.store.state import NotFoundError, Store

UNSEEN_BARS = 5
QUALITY_ROWS = (
    ("rows", "Rows", "num"),
    ("missing_share", "Missing", "pct"),
    ("type_errors", "Type errors", "num"),
    ("out_of_range", "Out of reference range", "num"),
    ("unseen", "Unseen categories", "num"),
    ("distinct", "Distinct (estimate)", "num"),
    ("min", "Min", "num"),
    ("max", "Max", "num"),
    ("mean", "Mean", "num"),
    ("std", "Std", "num"),
    ("median", "Median", "num"),
)


def distribution(reference: Any, current: Any) -> dict[str, Any]:
    """The report's distribution dict, with the current window's top unseen values."""
    if isinstance(reference, NumericProfile):
        return {
            "kind": "numeric",
            "edges": reference.edges.tolist(),
            "reference": reference.counts.tolist(),
            "current": current.counts.tolist(),
        }
    assert isinstance(reference, CategoricalProfile)
    assert isinstance(current, CategoricalProfile)
    unseen = current.top_extra(UNSEEN_BARS)
    ref_extra = reference.extra or {}
    named = sum(count for _, count in unseen)
    return {
        "kind": "categorical",
        "categories": [*reference.categories, *(v for v, _ in unseen), "(other)"],
        "reference": [
            *reference.counts[:-1].tolist(),
            *(ref_extra.get(v, 0) for v, _ in unseen),
            int(reference.counts[-1]) - sum(ref_extra.get(v, 0) for v, _ in unseen),
        ],
        "current": [
            *current.counts[:-1].tolist(),
            *(c for _, c in unseen),
            max(int(current.counts[-1]) - named, 0),
        ],
    }


def feature_page(store: Store, ctx: Context, feature: str, window: str | None) -> dict[str, Any]:
    names = dict(feature_names(store, ctx.info.name, ctx.version))
    if feature not in names:
        raise NotFoundError(
            f"model {ctx.info.name!r} version {ctx.version!r} has no profiled feature {feature!r}"
        )
    windows = queries.windows(store, ctx.scope)
    chosen = windows[-1] if windows else None
    if window:
        if not window.isdigit() or int(window) not in windows:
            raise InputError(
                f"query parameter window: {window!r} is not the start (Unix seconds) of an "
                "evaluated window in the range"
            )
        chosen = int(window)
    series = queries.feature_series(store, ctx.scope, ("drift_statistic", "missing_share"), feature)
    drift, missing = series["drift_statistic"], series["missing_share"]
    charts_ = [_drift_chart(drift), _missing_chart(missing)]
    _, reference = store.reference(ctx.info.name, ctx.version)
    ref_col = reference.columns.get(feature)
    current = None
    if chosen is not None:
        profile = queries.window_profile(store, ctx.scope, ctx.info.window_seconds, chosen)
        current = None if profile is None else profile.columns.get(feature)
    dist_figure = None
    if ref_col is not None and current is not None:
        dist_figure = charts.distribution_figure(distribution(ref_col, current))
    at = {w: (v, d if isinstance(d, dict) else {}) for w, v, d in drift}
    stat, detail = at.get(chosen, (None, {})) if chosen is not None else (None, {})
    q_ref = column_quality(ref_col) if ref_col is not None else {}
    q_cur = column_quality(current) if current is not None else {}
    return {
        "feature": feature,
        "type": names[feature],
        "window": chosen,
        "windows": len(windows),
        "charts": charts_,
        "distribution": None if dist_figure is None else figure_json(dist_figure),
        "drift": {"statistic": stat, **detail},
        "quality": [
            {"label": label, "format": fmt, "reference": q_ref.get(k), "current": q_cur.get(k)}
            for k, label, fmt in QUALITY_ROWS
            if k in q_ref or k in q_cur
        ],
        "top_unseen": [str(v) for v in q_cur.get("top_unseen", [])],
    }


def _drift_chart(drift: list[tuple[int, float | None, Any]]) -> dict[str, Any]:
    key, title = "feature-drift", "Drift statistic"
    if not drift:
        return {"key": key, "title": title, "figure": None}
    times = [w for w, _, _ in drift]
    details = [d if isinstance(d, dict) else {} for _, _, d in drift]
    name = label("drift_statistic")
    columns = {
        name: [v for _, v, _ in drift],
        "threshold": [d.get("threshold") for d in details],
    }
    xs, ys, run = downsample(times, columns)
    marked = None
    if run == 1:
        marked = [bool(d.get("drifted")) for d in details]
    figure = time_series_spec(
        xs, {name: ys[name]}, threshold=ys["threshold"], marked=marked, customdata=xs
    )
    note = f"each point averages {run} windows" if run > 1 else "click a point to see its window"
    return {"key": key, "title": title, "figure": figure_json(figure), "note": note, "click": True}


def _missing_chart(missing: list[tuple[int, float | None, Any]]) -> dict[str, Any]:
    key, title = "feature-missing", "Missing share"
    if not missing:
        return {"key": key, "title": title, "figure": None}
    columns = {label("missing_share"): [v for _, v, _ in missing]}
    xs, ys, run = downsample([w for w, _, _ in missing], columns)
    figure = time_series_spec(xs, ys, y_format=".1%")
    return {
        "key": key,
        "title": title,
        "figure": figure_json(figure),
        "note": f"each point averages {run} windows" if run > 1 else "",
    }
