"""Render a report dict as one self-contained, offline HTML document.

The input is the JSON-safe dict produced by ``Report.to_dict()``. plotly (and the figure
building in :mod:`watchkeeper.charts`) is imported only inside :func:`render_html`, so plots
cost nothing unless HTML is asked for. Everything that comes from data is escaped by Jinja2
autoescaping; figure JSON is embedded in ``<script type="application/json">`` blocks with
``<``, ``>`` and ``&`` written as ``\\u`` escapes, so no data value can close the script.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

__all__ = ["render_html"]

_DASH = "—"
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
}
_COUNT_KEYS = ("missing_share", "type_errors", "out_of_range", "unseen", "top_unseen")
_QUALITY_KEYS = (*_COUNT_KEYS, "min", "max", "mean", "std")
# Distribution panels opened (and plotted) on load; the rest render when expanded.
_OPEN_ON_LOAD = 6


# --------------------------------------------------------------------------- formatting


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: object) -> float | None:
    """``value`` as a finite float, or None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def fmt_num(value: object) -> str:
    """Format a statistic: integers with thousands separators, floats to 4 significant digits."""
    if value is None or isinstance(value, jinja2.Undefined):
        return _DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        text = f"{value:,}"
    elif not isinstance(value, float):
        return str(value)
    elif math.isnan(value):
        return _DASH
    elif math.isinf(value):
        text = "∞" if value > 0 else "-∞"
    elif value == 0:
        text = "0"
    elif abs(value) >= 1e-3:
        text = f"{value:.4g}"
        text = f"{value:,.0f}" if "e" in text or abs(value) >= 1e4 else text
    else:
        text = _sci(value, 2)
    return "−" + text[1:] if text.startswith("-") else text


def _sci(value: float, digits: int) -> str:
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def fmt_p(value: object) -> str:
    """Format a p-value: fixed for p >= 0.001, scientific below."""
    p = _finite(value)
    if p is None:
        return _DASH
    if p == 0:
        return "< 1e-300"
    return f"{p:.3f}" if p >= 1e-3 else _sci(p, 2)


def fmt_pct(value: object) -> str:
    """Format a share in [0, 1] as a percentage."""
    share = _finite(value)
    if share is None:
        return _DASH
    if share == 0:
        return "0%"
    if abs(share) < 1e-4:
        return "<0.01%" if share > 0 else "−<0.01%"
    if abs(share) < 0.01:
        return f"{share * 100:.2f}%"
    return f"{share * 100:.1f}%"


def fmt_delta(value: object, *, pct: bool = False) -> str:
    """Signed change (true minus sign), as a number or a percentage."""
    delta = _finite(value)
    if delta is None:
        return _DASH
    text = fmt_pct(abs(delta)) if pct else fmt_num(abs(delta))
    return text if delta == 0 else ("+" if delta > 0 else "−") + text


def fmt_compact(value: object) -> str:
    """Like :func:`fmt_num`, but large magnitudes get a k/M/G/T suffix (4 significant digits)."""
    number = _finite(value)
    if number is None or abs(number) < 1e4:
        return fmt_num(value)
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= scale:
            return f"{number / scale:.4g}{suffix}"
    return fmt_num(value)  # pragma: no cover - unreachable


def fmt_time(value: object) -> str:
    """ISO-8601 timestamp to ``YYYY-MM-DD HH:MM`` plus ``UTC`` or the offset."""
    if not isinstance(value, str):
        return _DASH
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return value
    offset = stamp.utcoffset()
    zone = "" if offset is None else " UTC" if not offset else f" {stamp:%z}"
    return f"{stamp:%Y-%m-%d %H:%M}{zone}"


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
    effect = _finite(entry.get("effect_size"))
    return (1, 0.0) if effect is None else (0, -effect)


def _unseen(entry: Mapping[str, Any], quality: object) -> Any:
    if entry.get("type") != "categorical":
        return None
    count = _get(quality, "current", "unseen")
    if _is_number(count):
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
    effects = [_finite(e.get("effect_size")) for e in entries]
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
        counts = (_finite(cur.get(k)) for k in ("type_errors", "out_of_range", "unseen"))
        issue = any(c is not None and c > 0 for c in counts) or (_finite(change) or 0.0) > 0.01
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


def _metric_row(path: tuple[str, ...], ref: object, cur: object) -> dict[str, Any]:
    r, c = ({"value": None, **_map(_get(side, *path))} for side in (ref, cur))
    rl, rh, cl, ch = (_finite(x.get(k)) for x in (r, c) for k in ("ci_low", "ci_high"))
    disjoint = False
    if rl is not None and rh is not None and cl is not None and ch is not None:
        disjoint = ch < rl or cl > rh
    rv, cv = _finite(r["value"]), _finite(c["value"])
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
    }


def _performance(report: Mapping[str, Any]) -> dict[str, Any] | None:
    perf = report.get("performance")
    if not isinstance(perf, Mapping):
        return None
    ref, cur = _map(perf.get("reference")), _map(perf.get("current"))
    paths = dict.fromkeys([*_metric_paths(ref), *_metric_paths(cur)])
    rows = [_metric_row(path, ref, cur) for path in paths]
    metrics = [m for m in rows if m["group"] is None]
    by_key = {m["key"]: m for m in metrics if _finite(m["cur"]["value"]) is not None}
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
    return {
        "report": report,
        "title": report.get("title") or "Model monitoring report",
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
        "plotly_js": _plotly_js(),
        "reference_color": charts.REFERENCE_COLOR,
        "current_color": charts.CURRENT_COLOR,
    }


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
