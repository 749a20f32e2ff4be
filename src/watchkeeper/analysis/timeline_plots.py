"""The Timeline's figures and pages: plotly figures of a metric over the chunks, the
self-contained HTML page (the batch report's plotly bundle and escaping, :mod:`watchkeeper.html`)
and the small table Jupyter shows."""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING, Any

import jinja2

from watchkeeper.charts import ALERT_COLOR, CURRENT_COLOR, REFERENCE_COLOR, TEMPLATE, plotly_text
from watchkeeper.html import _figure_json, _plotly_js
from watchkeeper.html_format import fmt_num, fmt_pct

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from watchkeeper.analysis.timeline import Timeline

MAX_LINES = 12  # columns drawn in one figure; the rest are in the frame
PALETTE = ("#2563eb", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2")


Rows = list[dict[str, Any]]


def _x(rows: Rows) -> list[Any]:
    """The chunks' start times (ISO strings) or, without a timestamp, their row ranges."""
    return [r["start"].isoformat() if hasattr(r["start"], "isoformat") else r["key"] for r in rows]


def metric_figure(rows: Rows, metric: str) -> go.Figure:
    """``metric`` over the chunks (the Timeline's records of it), one line per column,
    thresholds (or the reference's value) dashed, alerts marked in red."""
    import plotly.graph_objects as go

    fig = go.Figure()
    columns = list(dict.fromkeys(r["column"] for r in rows))[:MAX_LINES]
    single = len(columns) == 1
    for i, name in enumerate(columns):
        part = [r for r in rows if r["column"] == name]
        x, label = _x(part), plotly_text(name or "dataset")
        color = CURRENT_COLOR if single else PALETTE[i % len(PALETTE)]
        fig.add_scatter(
            x=x,
            y=[r["value"] for r in part],
            mode="lines+markers",
            name=label,
            line={"color": color},
        )
        if single or metric == "drift_share":
            threshold = metric in ("drift", "drift_share") or metric.startswith("multivariate_")
            kind = "threshold" if threshold else "reference"
            lower = [r.get("lower_threshold") for r in part]
            two_sided = any(v is not None for v in lower)
            fig.add_scatter(
                x=x,
                y=[r["threshold"] for r in part],
                mode="lines",
                name=f"{label}: {'upper threshold' if two_sided else kind}",
                line={"color": REFERENCE_COLOR, "dash": "dash"},
            )
            if two_sided:  # a two-sided decision (the PCA's): the no-drift band, shaded
                fig.add_scatter(
                    x=x,
                    y=lower,
                    mode="lines",
                    name=f"{label}: lower threshold",
                    line={"color": REFERENCE_COLOR, "dash": "dash"},
                    fill="tonexty",
                    fillcolor="rgba(127, 127, 127, 0.15)",
                )
        alerts = [r for r in part if r["alert"]]
        if alerts:
            fig.add_scatter(
                x=_x(alerts),
                y=[r["value"] for r in alerts],
                mode="markers",
                name=f"{label}: alert",
                marker={"color": ALERT_COLOR, "size": 10, "symbol": "x"},
            )
    fig.update_layout(
        template=TEMPLATE,
        height=320,
        title={"text": plotly_text(metric), "x": 0},
        yaxis={"title": {"text": metric}},
        hovermode="x unified",
    )
    return fig


# the estimated metrics the page draws, each next to its realized value where labels came
ESTIMATED_ON_PAGE = ("estimated_accuracy", "estimated_rmse")


def estimated_figure(rows: Rows, realized: Rows, metric: str) -> go.Figure:
    """An estimated metric over the chunks, with the realized value of the chunks that have
    labels: how far the estimate can be trusted."""
    fig = metric_figure(rows, metric)
    known = [r for r in realized if r["value"] is not None]
    if known:
        fig.add_scatter(
            x=_x(known),
            y=[r["value"] for r in known],
            mode="markers",
            name=f"{plotly_text(metric.removeprefix('estimated_'))}: realized",
            marker={"color": PALETTE[1], "size": 8, "symbol": "diamond"},
        )
    return fig


def figures(timeline: Timeline) -> list[tuple[str, go.Figure]]:
    """One figure per metric (of the estimated ones, accuracy or RMSE with the realized value
    next to it), and one per column for drift."""
    records = timeline.records()
    out = []
    for metric in dict.fromkeys(r["metric"] for r in records):
        rows = [r for r in records if r["metric"] == metric]
        if metric.startswith("estimated_"):
            if metric in ESTIMATED_ON_PAGE:
                plain = metric.removeprefix("estimated_")
                realized = [r for r in records if r["metric"] == plain]
                out.append((metric, estimated_figure(rows, realized, metric)))
        elif metric == "drift":
            for name in dict.fromkeys(r["column"] for r in rows):
                part = [r for r in rows if r["column"] == name]
                out.append((f"drift of {name}", metric_figure(part, metric)))
        else:
            out.append((metric, metric_figure(rows, metric)))
    return out


def _chunk_rows(timeline: Timeline) -> list[dict[str, Any]]:
    rows = []
    for chunk, report in zip(timeline.chunks, timeline.reports, strict=True):
        s = report.summary()
        perf = report.performance or {}
        h = perf.get("headline")
        value = ((perf.get("current") or {}).get(h) or {}).get("value") if h else None
        rows.append(
            {
                "key": chunk.key,
                "rows": chunk.rows,
                "drifted": ", ".join(s["drifted_columns"]) or "—",
                "share": fmt_pct(s["drift_share"]),
                "dataset_drift": s["dataset_drift"],
                "performance": f"{h} {fmt_num(value)}" if h and value is not None else "—",
                "degraded": bool(perf.get("degraded")),
                "joint": _joint(report),
            }
        )
    return rows


def _joint(report: Any) -> str:
    """The chunk's multivariate verdict: "yes (income × age)", "no", or "—" when off."""
    joint = report.multivariate_drift
    if joint is None or all(r.statistic is None for r in joint.results.values()):
        return "—"
    if not joint.drifted:
        return "no"
    top = [name for name, imp in joint.drivers[:2] if imp > 0]
    return f"yes ({' × '.join(top)})" if top else "yes"


@functools.cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)


@functools.cache
def _template() -> jinja2.Template:
    source = resources.files("watchkeeper").joinpath("templates/timeline.html.j2")
    return _env().from_string(source.read_text(encoding="utf-8"))


_SUMMARY = """<table class="wk-timeline">
<thead><tr><th>chunk</th><th>rows</th><th>drifted columns</th><th>drifted share</th>
<th>dataset drift</th><th>joint drift</th><th>performance</th></tr></thead><tbody>
{% for r in rows %}<tr><td>{{ r.key }}</td><td>{{ r.rows }}</td><td>{{ r.drifted }}</td>
<td>{{ r.share }}</td><td>{{ 'yes' if r.dataset_drift else 'no' }}</td><td>{{ r.joint }}</td>
<td>{{ r.performance }}{{ ' (worse)' if r.degraded else '' }}</td></tr>
{% endfor %}</tbody></table>"""


def summary_table(timeline: Timeline) -> str:
    """An HTML table, one row per chunk (what Jupyter shows for a Timeline)."""
    return _env().from_string(_SUMMARY).render(rows=_chunk_rows(timeline))


def render_timeline(timeline: Timeline) -> str:
    """The Timeline as one offline HTML document."""
    from watchkeeper import __version__

    alerts = [r for r in timeline.records() if r["alert"]]
    figs = [
        {"title": title, "anchor": f"fig-{i}", "figure": _figure_json(fig)}
        for i, (title, fig) in enumerate(figures(timeline))
    ]
    return _template().render(
        version=__version__,
        chunking={k: v for k, v in timeline.chunking.items() if v is not None},
        reference_rows=timeline.reference_rows,
        n_chunks=len(timeline),
        summary=summary_table(timeline),
        alerts=alerts,
        figures=figs,
        plotly_js=_plotly_js(),
        fmt=fmt_num,
    )
