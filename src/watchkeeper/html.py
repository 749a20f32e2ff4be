"""Render a report dict as one self-contained, offline HTML document.

The input is the JSON-safe dict produced by ``Report.to_dict()``. plotly (and the figure
building in :mod:`watchkeeper.charts`) is imported only inside :func:`render_html`, so plots
cost nothing unless HTML is asked for. Everything that comes from data is escaped by Jinja2
autoescaping; figure JSON is embedded in ``<script type="application/json">`` blocks with
``<``, ``>`` and ``&`` written as ``\\u`` escapes, so no data value can close the script.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from watchkeeper.html_format import (
    finite,
    fmt_compact,
    fmt_delta,
    fmt_num,
    fmt_p,
    fmt_pct,
    fmt_time,
    is_number,
)

__all__ = ["fmt_compact", "fmt_num", "fmt_p", "fmt_pct", "render_html"]

_SEVERITY_ORDER = {"error": 0, "critical": 0, "warning": 1, "info": 2}
_HEADLINE_METRICS = ("accuracy", "roc_auc", "f1_macro", "macro.f1", "r2", "rmse", "mae")
_NOT_METRICS = frozenset({"n", "classes", "confusion_matrix"})
_METRIC_NAMES = {
    "accuracy": "Accuracy",
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "log_loss": "Log loss",
    "f1": "F1",
    "precision": "Precision",
    "recall": "Recall",
    "mean_error": "Mean error",
    "brier": "Brier score",
    "rmse": "RMSE",
    "mae": "MAE",
    "mape": "MAPE",
    "r2": "R²",
    "specificity": "Specificity",
    "mse": "MSE",
}
# Which way a metric improves: a change is coloured good or bad by it, never by its sign.
_HIGHER_IS_BETTER = frozenset({"accuracy", "roc_auc", "pr_auc", "f1", "precision", "recall", "r2"})
_LOWER_IS_BETTER = frozenset({"rmse", "mae", "mape", "log_loss", "brier"})
_ZERO_IS_BEST = frozenset({"mean_error"})
_COUNT_KEYS = ("missing_share", "type_errors", "out_of_range", "unseen", "top_unseen")
_QUALITY_KEYS = (*_COUNT_KEYS, "min", "max", "mean", "std")
# Distribution panels opened (and plotted) on load; the rest render when expanded.
_OPEN_ON_LOAD = 6


def _metric_name(key: str) -> str:
    base, _, group = key.rpartition("_")
    if base and group in ("macro", "micro", "weighted"):
        return f"{_metric_name(base)} ({group})"
    return _METRIC_NAMES.get(key, key.replace("_", " ").capitalize())


# --------------------------------------------------------------------------- view model


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _get(mapping: object, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def _effect_key(entry: Mapping[str, Any]) -> tuple[int, float]:
    effect = finite(entry.get("effect_size"))
    return (1, 0.0) if effect is None else (0, -effect)


def _unseen(entry: Mapping[str, Any], quality: object) -> Any:
    if entry.get("type") != "categorical":
        return None
    count = _get(quality, "current", "unseen")
    if is_number(count):
        return count
    dist = _map(entry.get("distribution"))
    categories = _list(dist.get("categories"))
    if "(unseen)" in categories:
        current = _list(dist.get("current"))
        index = categories.index("(unseen)")
        return current[index] if index < len(current) else None
    return None


def _drift_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    drift, quality = report.get("drift"), _map(report.get("quality"))
    pairs = drift.items() if isinstance(drift, Mapping) else enumerate(_list(drift))
    entries = [
        dict(entry, column=entry.get("column", str(name)))
        for name, entry in pairs
        if isinstance(entry, Mapping)
    ]
    entries.sort(key=_effect_key)
    effects = [finite(e.get("effect_size")) for e in entries]
    max_effect = max((e for e in effects if e is not None), default=0.0)
    rows = []
    for index, (entry, effect) in enumerate(zip(entries, effects, strict=True)):
        q = quality.get(entry["column"])
        bar = max(0.0, min(1.0, effect / max_effect)) if effect and max_effect > 0 else 0.0
        rows.append(
            {
                **entry,
                "anchor": f"col-{index}",
                "bar": round(bar * 100, 1),
                "missing_ref": _get(q, "reference", "missing_share"),
                "missing_cur": _get(q, "current", "missing_share"),
                "unseen": _unseen(entry, q),
                "unseen_share": _get(q, "current", "unseen_share"),
                "unseen_examples": [str(v) for v in _list(_get(q, "current", "top_unseen"))][:3],
            }
        )
    return rows


def _quality_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, q in _map(report.get("quality")).items():
        if not isinstance(q, Mapping):
            continue
        ref, cur = (
            {k: _map(side).get(k) for k in _QUALITY_KEYS}
            for side in (q.get("reference"), q.get("current"))
        )
        cur["top_unseen"] = [str(v) for v in _list(cur["top_unseen"])][:5]
        change = q.get("missing_share_change")
        counts = (finite(cur.get(k)) for k in ("type_errors", "out_of_range", "unseen"))
        issue = any(c is not None and c > 0 for c in counts) or (finite(change) or 0.0) > 0.01
        row = {"column": name, "type": q.get("type"), "ref": ref, "cur": cur, "change": change}
        rows.append(row | {"issue": issue})
    return rows


def _metric_paths(metrics: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths to every ``{"value": ...}`` mapping, looking into groups such as ``macro``."""
    if not isinstance(metrics, Mapping) or len(prefix) > 2:
        return []
    paths: list[tuple[str, ...]] = []
    for key, value in metrics.items():
        if key in _NOT_METRICS or not isinstance(value, Mapping):
            continue
        path = (*prefix, str(key))
        paths.extend([path] if "value" in value else _metric_paths(value, path))
    return paths


def _verdict(metric: str, ref: float | None, cur: float | None) -> str | None:
    """``"better"`` or ``"worse"`` for a change of a metric whose good direction is known."""
    if ref is None or cur is None or ref == cur:
        return None
    if metric in _HIGHER_IS_BETTER:
        return "better" if cur > ref else "worse"
    if metric in _LOWER_IS_BETTER:
        return "better" if cur < ref else "worse"
    if metric in _ZERO_IS_BEST and abs(cur) != abs(ref):
        return "better" if abs(cur) < abs(ref) else "worse"
    return None


def _metric_row(path: tuple[str, ...], ref: object, cur: object) -> dict[str, Any]:
    r, c = ({"value": None, **_map(_get(side, *path))} for side in (ref, cur))
    rl, rh, cl, ch = (finite(x.get(k)) for x in (r, c) for k in ("ci_low", "ci_high"))
    disjoint = False
    if rl is not None and rh is not None and cl is not None and ch is not None:
        disjoint = ch < rl or cl > rh
    rv, cv = finite(r["value"]), finite(c["value"])
    name = _metric_name(path[-1])
    if len(path) == 2:
        name = f"{name} ({path[0].replace('_', ' ')})"
    return {
        "key": ".".join(path),
        "name": name,
        "group": path[1] if len(path) == 3 else None,
        "ref": r,
        "cur": c,
        "disjoint": disjoint,
        "delta": cv - rv if rv is not None and cv is not None else None,
        # "good" / "bad" when the change is credible (the intervals do not overlap)
        "tone": {"better": "good", "worse": "bad"}.get(_verdict(path[-1], rv, cv) or "")
        if disjoint
        else None,
    }


def _performance(report: Mapping[str, Any]) -> dict[str, Any] | None:
    perf = report.get("performance")
    if not isinstance(perf, Mapping):
        return None
    ref, cur = _map(perf.get("reference")), _map(perf.get("current"))
    paths = dict.fromkeys([*_metric_paths(ref), *_metric_paths(cur)])
    rows = [_metric_row(path, ref, cur) for path in paths]
    metrics = [m for m in rows if m["group"] is None]
    by_key = {m["key"]: m for m in metrics if finite(m["cur"]["value"]) is not None}
    headline = next((by_key[k] for k in _HEADLINE_METRICS if k in by_key), None)
    return {
        "task": perf.get("task") or cur.get("task") or ref.get("task"),
        "target": perf.get("target"),
        "prediction": perf.get("prediction"),
        "n_ref": ref.get("n"),
        "n_cur": cur.get("n"),
        "confidence": cur.get("confidence") or ref.get("confidence"),
        "metrics": metrics,
        "per_class": [m for m in rows if m["group"] is not None],
        "headline": headline or next(iter(by_key.values()), None),
        "matrices": [],
    }


def _estimated(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The estimated-performance section: per metric the estimate with its interval, the
    reference's realized value and, with labels, the realized value (flagged when outside)."""
    est = report.get("estimated_performance")
    if not isinstance(est, Mapping):
        return None
    realized, outside = _map(est.get("realized")), set(_list(est.get("outside_interval")))
    rows = [
        {
            "key": key,
            "name": _METRIC_NAMES.get(key, key),
            "estimate": _map(cell),
            "reference": _get(est, "reference", key),
            "realized": realized.get(key),
            "outside": key in outside,
        }
        for key, cell in _map(est.get("metrics")).items()
    ]
    return {**est, "table": rows, "labelled": bool(realized)}


def _figure_json(figure: Any) -> Markup:
    import plotly.io as pio

    text = pio.to_json(figure, validate=False, pretty=False)
    # plotly already escapes these; repeat it so the guarantee does not rest on plotly.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # no raw "<": cannot close <script>


def _context(report: Mapping[str, Any]) -> dict[str, Any]:
    from watchkeeper import charts

    drift_rows = _drift_rows(report)
    panels = sorted(drift_rows, key=lambda r: 0 if r.get("drifted") else 1)
    for position, row in enumerate(panels):
        figure = charts.distribution_figure(row.get("distribution"))
        row["figure"] = _figure_json(figure) if figure is not None else None
        row["open"] = bool(row.get("drifted")) and position < _OPEN_ON_LOAD
    performance = _performance(report)
    if performance is not None:
        perf = report["performance"]
        for side in ("reference", "current"):
            matrix = _get(perf, side, "confusion_matrix")
            if isinstance(matrix, Sequence) and matrix:
                classes = _get(perf, side, "classes")
                figure = charts.confusion_matrix_figure(matrix, classes)
                performance["matrices"].append({"side": side, "figure": _figure_json(figure)})
    findings = sorted(
        (f for f in _list(report.get("findings")) if isinstance(f, Mapping)),
        key=lambda f: _SEVERITY_ORDER.get(str(f.get("severity")), 3),
    )
    summary = _map(report.get("summary"))
    anchors = {r["column"]: r["anchor"] for r in drift_rows}
    order = {name: i for i, name in enumerate(anchors)}
    names = _list(summary.get("drifted_columns")) or [
        r["column"] for r in drift_rows if r.get("drifted")
    ]
    drifted = [
        {"name": name, "anchor": anchors.get(name, "drift")}
        for name in sorted(names, key=lambda n: order.get(n, len(order)))
    ]
    unchecked = _map(summary.get("unchecked_columns"))
    return {
        "report": report,
        "title": report.get("title") or "Model monitoring report",
        "unchecked": list(unchecked),
        "drift_tone": _drift_tone(summary, len(drifted), bool(unchecked)),
        "summary": summary,
        "settings": _map(report.get("settings")),
        "drifted": drifted,
        "n_checked": _count(summary.get("columns_checked"), len(drift_rows)),
        "n_drifted": _count(summary.get("n_drifted"), len(drifted)),
        "drift_rows": drift_rows,
        "panels": panels,
        "quality_rows": _quality_rows(report),
        "findings": findings,
        "n_errors": sum(1 for f in findings if _SEVERITY_ORDER.get(str(f.get("severity"))) == 0),
        "performance": performance,
        "multivariate": _multivariate(report),
        "estimated": _estimated(report),
        "slices": _slices(report),
        "explain": _explain(report),
        "plotly_js": _plotly_js(),
        "reference_color": charts.REFERENCE_COLOR,
        "current_color": charts.CURRENT_COLOR,
    }


def _multivariate(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The report's multivariate section with its methods, or None (off, or an older report)."""
    section = _map(report.get("multivariate_drift"))
    if not _map(section.get("methods")):
        return None
    return {
        "columns": _list(section.get("columns")),
        "message": section.get("message") or "",
        "drifted": section.get("drifted") is True,
        "methods": dict(_map(section.get("methods"))),
        "drivers": [d for d in _list(section.get("drivers")) if isinstance(d, Mapping)],
    }


def _slices(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The failing slices section, or None (off, no labels, or an older report)."""
    section = _map(report.get("failing_slices"))
    if not section or (section.get("reason") is not None and not section.get("tested")):
        return None
    items = [s for s in _list(section.get("slices")) if isinstance(s, Mapping)]
    metric = _metric_name(str(section.get("metric") or ""))
    return {**section, "found": items, "top": items[0] if items else None, "metric_name": metric}


def _explain(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The attributions and the drift impact, or None (off, or an older report)."""
    drift = _map(report.get("attributions"))
    impact = [i for i in _list(report.get("drift_impact")) if isinstance(i, Mapping)]
    if not drift:
        return None
    return {
        "impact": impact,
        "drift": drift,
        "method": drift.get("method") or "",
        "approximate": drift.get("approximate") is True,
        "fidelity": _map(drift.get("fidelity")),
    }


def _drift_tone(summary: Mapping[str, Any], n_drifted: int, unchecked: bool) -> str:
    """The dataset-drift card's colour: green only when nothing drifted and all was checked."""
    verdict = summary.get("dataset_drift")
    if verdict is True:
        return "bad"
    if verdict is not False:
        return ""
    return "warn" if n_drifted or unchecked or summary.get("drift_usable") is False else "good"


def _count(value: object, fallback: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else fallback


# --------------------------------------------------------------------------- rendering


@functools.cache
def _plotly_js() -> Markup:
    from plotly.offline import get_plotlyjs

    # plotly's own bundle, not data; it holds no "</script", but make sure it cannot end early.
    return Markup(get_plotlyjs().replace("</script", "<\\/script"))


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.filters.update(
        num=fmt_num, compact=fmt_compact, p=fmt_p, pct=fmt_pct, delta=fmt_delta, time=fmt_time
    )
    source = resources.files("watchkeeper").joinpath("templates/report.html.j2")
    return env.from_string(source.read_text(encoding="utf-8"))


def render_html(report: Mapping[str, Any]) -> str:
    """Render ``report`` (the dict from ``Report.to_dict()``) as one offline HTML document."""
    return _template().render(_context(report))
