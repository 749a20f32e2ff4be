"""Time-series figures of the dashboard: one point per evaluated window.

The look is :mod:`watchkeeper.charts`' (its template, colours and label escaping), so the
dashboard and the static report read alike. A dashboard page draws several of these charts
with hundreds of points each, so the builder returns the plain figure dict plotly.js takes
rather than a ``go.Figure``: plotly's per-property validation would cost more than the rest
of the page. :func:`time_series_figure` wraps the same dict in a validated ``go.Figure``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from watchkeeper.charts import ALERT_COLOR, CURRENT_COLOR, TEMPLATE, plotly_text

__all__ = ["SERIES_COLORS", "time_series_figure", "time_series_spec"]

# The series of one chart (p50, p95, p99; accuracy, f1, ...), in order.
SERIES_COLORS = (CURRENT_COLOR, "#f59e0b", ALERT_COLOR, "#0d9488", "#7c3aed", "#64748b")
BAND_FILL = "rgba(37, 99, 235, 0.18)"  # the first series' colour, light: its interval
SECOND_BAND_FILL = "rgba(245, 158, 11, 0.18)"  # the second series' colour, light
BASELINE_COLOR = "#0f172a"
MARK_COLOR = "#7c3aed"  # a promotion or rollback on the time axis


@functools.cache
def _template_json() -> dict[str, Any]:
    return dict(TEMPLATE.to_plotly_json())


def _utc(times: Sequence[float]) -> list[str]:
    """ISO 8601 UTC of Unix seconds, all at once (a chart has hundreds)."""
    stamps = np.asarray(times, dtype=np.float64).astype("datetime64[s]")
    return [str(s) for s in np.datetime_as_string(stamps, unit="s")]


def time_series_spec(
    times: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    *,
    height: int = 220,
    y_title: str = "",
    y_format: str | None = None,
    bars: bool = False,
    threshold: Sequence[float | None] | None = None,
    marked: Sequence[bool] | None = None,
    customdata: Sequence[object] | None = None,
    band: tuple[Sequence[float | None], Sequence[float | None]] | None = None,
    band_name: str = "interval",
    second_band: tuple[Sequence[float | None], Sequence[float | None], str] | None = None,
    baseline: float | None = None,
    baseline_name: str = "baseline",
    marks: Sequence[tuple[float, str]] = (),
) -> dict[str, Any]:
    """One or more series over time, one point per window, as a plain plotly figure dict.

    ``times`` are Unix seconds, shown in UTC. ``None`` values leave a gap. ``threshold`` adds
    a dashed line (a drift threshold, which moves with each window's size); ``marked`` draws
    the points of the first series where it is true in the alert colour (drifted windows);
    ``customdata`` rides on the first series (a dashboard links a clicked point to it).
    ``band`` (low, high) shades an interval around the first series (a confidence interval;
    windows where either end is None are left out of it); ``second_band`` (low, high, name)
    one around the second series, in its colour (an estimate next to the realized value);
    ``baseline`` draws a horizontal
    dotted line (a training baseline) across the chart. ``marks`` (Unix seconds, label) draw a
    labelled vertical line each (a promotion); those before the first window are left out.

    The dict is what ``go.Figure(...).to_plotly_json()`` would give, without the validation.
    """
    x = _utc(times)

    def values(seq: Sequence[float | None]) -> list[float | None]:
        return [None if v is None or not math.isfinite(v) else float(v) for v in seq]

    data: list[dict[str, Any]] = []
    for i, (name, ys) in enumerate(series.items()):
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        trace: dict[str, Any] = {"name": plotly_text(name), "x": x, "y": values(ys)}
        if bars:
            trace |= {"type": "bar", "marker": {"color": color}}
        else:
            trace |= {
                "type": "scatter",
                "mode": "lines+markers" if len(x) <= 48 else "lines",
                "line": {"color": color, "width": 2},
                "marker": {"size": 5},
                "connectgaps": False,
            }
        if i == 0 and customdata is not None:
            trace["customdata"] = list(customdata)
        data.append(trace)
    if threshold is not None:
        data.append(
            {
                "type": "scatter",
                "name": "threshold",
                "x": x,
                "y": values(threshold),
                "mode": "lines",
                "line": {"color": "#64748b", "width": 1.5, "dash": "dash"},
                "hoverinfo": "skip",
            }
        )
    if band is not None and data:
        data.append(_band(x, values(band[0]), values(band[1]), band_name))
    if second_band is not None and len(data) > 1:
        low, high, name = second_band
        data.append(_band(x, values(low), values(high), name, SECOND_BAND_FILL))
    if baseline is not None and math.isfinite(baseline) and x:
        data.append(
            {
                "type": "scatter",
                "name": plotly_text(baseline_name),
                "x": [x[0], x[-1]],
                "y": [float(baseline)] * 2,
                "mode": "lines",
                "line": {"color": BASELINE_COLOR, "width": 2, "dash": "dot"},
            }
        )
    if marked is not None and data:
        hit = [i for i, m in enumerate(marked) if m]
        data.append(
            {
                "type": "scatter",
                "name": "drifted",
                "x": [x[i] for i in hit],
                "y": [data[0]["y"][i] for i in hit],
                "mode": "markers",
                "marker": {"color": ALERT_COLOR, "size": 7},
                "hoverinfo": "skip",
            }
        )
    layout: dict[str, Any] = {
        "template": _template_json(),
        "height": height,
        "hovermode": "x unified",
        "bargap": 0.1,
        "showlegend": len(data) > 1,
        "xaxis": {"type": "date"},
        "yaxis": {"tickformat": y_format} if y_format else {},
        "margin": {"l": 56, "r": 16, "t": 28, "b": 32},
    }
    if y_title:
        layout["yaxis"]["title"] = {"text": plotly_text(y_title)}
    shown = [(at, label) for at, label in marks if times and at >= min(times)]
    if shown:
        xs = _utc([at for at, _ in shown])
        layout["shapes"] = [
            {
                "type": "line", "xref": "x", "yref": "paper", "x0": x0, "x1": x0, "y0": 0,
                "y1": 1, "line": {"color": MARK_COLOR, "width": 1.5, "dash": "dashdot"},
            }
            for x0 in xs
        ]  # fmt: skip
        layout["annotations"] = [
            {
                "x": x0, "xref": "x", "y": 1, "yref": "paper", "yanchor": "bottom",
                "text": plotly_text(label), "showarrow": False,
                "font": {"size": 11, "color": MARK_COLOR},
            }
            for x0, (_, label) in zip(xs, shown, strict=True)
        ]  # fmt: skip
    return {"data": data, "layout": layout}


def _band(
    x: list[str],
    low: list[float | None],
    high: list[float | None],
    name: str,
    fill: str = BAND_FILL,
) -> Any:
    """One closed polygon: the high ends left to right, then the low ends back."""
    keep = [i for i in range(len(x)) if low[i] is not None and high[i] is not None]
    return {
        "type": "scatter",
        "name": plotly_text(name),
        "x": [x[i] for i in keep] + [x[i] for i in reversed(keep)],
        "y": [high[i] for i in keep] + [low[i] for i in reversed(keep)],
        "mode": "lines",
        "fill": "toself",
        "fillcolor": fill,
        "line": {"width": 0, "color": fill},
        "hoverinfo": "skip",
    }


def time_series_figure(
    times: Sequence[float], series: Mapping[str, Sequence[float | None]], **options: Any
) -> Any:
    """:func:`time_series_spec` as a validated ``plotly.graph_objects.Figure``."""
    import plotly.graph_objects as go

    return go.Figure(time_series_spec(times, series, **options))
