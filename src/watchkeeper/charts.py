"""Plotly figure builders for reports and dashboards.

Every builder takes plain data (lists of numbers and labels, as found in the JSON-safe report
dict) and returns a ``plotly.graph_objects.Figure``; nothing here knows about ``Report``.
Labels that come from data are entity-escaped before they reach plotly, because plotly.js
interprets a small HTML subset in text; escaping makes it show the label literally.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

__all__ = [
    "ALERT_COLOR",
    "CURRENT_COLOR",
    "REFERENCE_COLOR",
    "TEMPLATE",
    "categorical_distribution_figure",
    "confusion_matrix_figure",
    "distribution_figure",
    "numeric_distribution_figure",
    "plotly_text",
]

REFERENCE_COLOR = "#94a3b8"
CURRENT_COLOR = "#2563eb"
ALERT_COLOR = "#b91c1c"
_FONT = (
    'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif'
)

# A deliberately small template: plotly's default template adds ~7 kB of JSON to every figure.
TEMPLATE = go.layout.Template(
    layout={
        "font": {"family": _FONT, "size": 12, "color": "#1e293b"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "colorway": [REFERENCE_COLOR, CURRENT_COLOR],
        "hoverlabel": {
            "font": {"family": _FONT, "color": "#0f172a"},
            "bgcolor": "#ffffff",
            "bordercolor": "#cbd5e1",
            "align": "left",
        },
        "xaxis": {
            "gridcolor": "#eef2f7",
            "linecolor": "#cbd5e1",
            "zeroline": False,
            "automargin": True,
            "ticks": "outside",
            "tickcolor": "#cbd5e1",
        },
        "yaxis": {
            "gridcolor": "#eef2f7",
            "linecolor": "#cbd5e1",
            "zeroline": False,
            "automargin": True,
            "rangemode": "tozero",
        },
        "legend": {
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.02,
            "xanchor": "left",
            "x": 0.0,
            "bgcolor": "rgba(0,0,0,0)",
        },
        "margin": {"l": 56, "r": 16, "t": 36, "b": 48},
    }
)


def plotly_text(value: object) -> str:
    """Make ``value`` display literally in plotly.js text (which understands a little HTML)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _num(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    number = float(value)
    return number if math.isfinite(number) else 0.0


def _short(x: float) -> str:
    """Compact number for axis/bin labels."""
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e6:
        return f"{x:.4g}"
    return f"{x:.3g}"


def _share(count: float, total: float) -> float:
    return count / total if total > 0 else 0.0


def _pct(share: float) -> str:
    if share == 0:
        return "0%"
    if share < 1e-4:
        return "<0.01%"
    return f"{share:.2%}" if share < 0.01 else f"{share:.1%}"


def _base_layout(height: int, hovermode: str = "x unified") -> dict[str, Any]:
    return {"template": TEMPLATE, "height": height, "hovermode": hovermode, "bargap": 0.0}


def _seq(values: object) -> list[Any]:
    return list(values) if isinstance(values, Sequence) and not isinstance(values, str) else []


def _pad(counts: object, size: int) -> list[float]:
    values = [_num(c) for c in _seq(counts)][:size]
    return values + [0.0] * (size - len(values))


def numeric_distribution_figure(
    edges: Sequence[float],
    reference: Sequence[float],
    current: Sequence[float],
    *,
    height: int = 300,
) -> go.Figure:
    """Reference (bars) vs current (step line) histogram over shared bin ``edges``.

    ``reference``/``current`` hold ``len(edges) + 1`` counts: index 0 counts values below
    ``edges[0]``, index ``i`` (1..B) the bin ``[edges[i-1], edges[i])`` and the last index
    values above ``edges[-1]``. Interior bins are drawn as densities (count / (n * width)) so
    unequal bin widths compare fairly; the two open-ended outer bins are reported as
    annotations. If any bin has zero or non-finite width (e.g. a constant column) the bins are
    drawn as shares on a categorical axis instead.
    """
    bounds = [_num(e) for e in edges]
    n_bins = max(len(bounds) - 1, 0)
    ref, cur = _pad(reference, n_bins + 2), _pad(current, n_bins + 2)
    n_ref, n_cur = sum(ref), sum(cur)
    widths = [bounds[i + 1] - bounds[i] for i in range(n_bins)]
    finite = all(isinstance(e, int | float) and math.isfinite(e) for e in edges)
    labels = [f"[{_short(bounds[i])}, {_short(bounds[i + 1])})" for i in range(n_bins)]
    # a discrete reference's cells hold one value each, with the gaps between them in cells of
    # their own (numeric.discrete_edges): a point cell is one float wide
    points = [
        finite and bounds[i + 1] <= math.nextafter(bounds[i], math.inf) for i in range(n_bins)
    ]
    if not (n_bins > 0 and finite and all(w > 0 for w in widths)) or any(points):
        names = [
            f"= {_short(bounds[i])}"
            if w <= 0 or points[i]
            else f"({_short(bounds[i])}, {_short(bounds[i + 1])})"
            if i > 0 and points[i - 1]
            else lab
            for i, (lab, w) in enumerate(zip(labels, widths, strict=True))
        ]
        fig = _grouped_shares(names, ref[1 : n_bins + 1], cur[1 : n_bins + 1], height)
        _outer_annotations(fig, ref, cur, n_ref, n_cur)
        return fig

    def density(counts: list[float], total: float) -> list[float]:
        return [_share(c, total * w) for c, w in zip(counts[1 : n_bins + 1], widths, strict=True)]

    def describe(counts: list[float], total: float, dens: list[float]) -> list[str]:
        return [
            f"{_short(d)} · {int(c):,} rows ({_pct(_share(c, total))})"
            for c, d in zip(counts[1 : n_bins + 1], dens, strict=True)
        ]

    ref_density, cur_density = density(ref, n_ref), density(cur, n_cur)
    custom = list(
        zip(
            labels,
            describe(ref, n_ref, ref_density),
            describe(cur, n_cur, cur_density),
            strict=True,
        )
    )
    fig = go.Figure(layout=_base_layout(height, hovermode="x"))
    fig.add_trace(
        go.Bar(
            name="Reference",
            x=bounds[:-1],
            y=ref_density,
            width=widths,
            offset=0,
            customdata=custom,
            marker={"color": REFERENCE_COLOR, "opacity": 0.6, "line": {"width": 0}},
            hovertemplate="<b>%{customdata[0]}</b><br>reference: %{customdata[1]}"
            "<br>current: %{customdata[2]}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            name="Current",
            x=bounds,
            y=[*cur_density, cur_density[-1]],
            mode="lines",
            line={"shape": "hv", "color": CURRENT_COLOR, "width": 2},
            fill="tozeroy",
            fillcolor="rgba(37, 99, 235, 0.10)",
            hoverinfo="skip",
        )
    )
    fig.update_layout(yaxis_title="density", xaxis={"range": [bounds[0], bounds[-1]]})
    _outer_annotations(fig, ref, cur, n_ref, n_cur)
    return fig


def _outer_annotations(
    fig: go.Figure, ref: list[float], cur: list[float], n_ref: float, n_cur: float
) -> None:
    """Annotate mass outside the reference range (the two open-ended bins)."""
    sides = (("◀ below ref min", 0, 0.0, "left"), ("above ref max ▶", -1, 1.0, "right"))
    for label, index, x, anchor in sides:
        if ref[index] == 0 and cur[index] == 0:
            continue
        ref_share, cur_share = _share(ref[index], n_ref), _share(cur[index], n_cur)
        color = ALERT_COLOR if cur_share > ref_share else "#475569"
        fig.add_annotation(
            text=f"{label}: ref {_pct(ref_share)} · cur <b>{_pct(cur_share)}</b>",
            xref="paper",
            yref="paper",
            x=x,
            y=1.0,
            xanchor=anchor,
            yanchor="top",
            showarrow=False,
            font={"size": 11, "color": color},
            bgcolor="rgba(255, 255, 255, 0.85)",
            borderpad=3,
        )


def _grouped_shares(
    labels: list[str], reference: list[float], current: list[float], height: int
) -> go.Figure:
    fig = go.Figure(layout=_base_layout(height))
    for name, counts, color in (
        ("Reference", reference, REFERENCE_COLOR),
        ("Current", current, CURRENT_COLOR),
    ):
        total = sum(counts)
        shares = [_share(c, total) for c in counts]
        fig.add_trace(
            go.Bar(
                name=name,
                x=labels,
                y=shares,
                customdata=counts,
                marker={"color": color},
                hovertemplate=f"{name}: %{{y:.2%}} (%{{customdata:,}} rows)<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        bargap=0.25,
        bargroupgap=0.05,
        yaxis_title="share",
        yaxis_tickformat=".0%",
        xaxis={"type": "category", "categoryorder": "array", "categoryarray": labels},
    )
    return fig


def categorical_distribution_figure(
    categories: Sequence[object],
    reference: Sequence[float],
    current: Sequence[float],
    *,
    height: int = 300,
) -> go.Figure:
    """Grouped bars of the share of each category in reference and current.

    ``categories`` may include bucket labels such as ``"(unseen)"`` or ``"(other)"``; every
    label is shown literally.
    """
    labels = [plotly_text(c) for c in categories]
    return _grouped_shares(labels, _pad(reference, len(labels)), _pad(current, len(labels)), height)


def distribution_figure(distribution: Mapping[str, Any] | None) -> go.Figure | None:
    """Dispatch on ``distribution["kind"]``; ``None`` when there is nothing to draw."""
    if not isinstance(distribution, Mapping):
        return None
    kind = distribution.get("kind")
    reference, current = _seq(distribution.get("reference")), _seq(distribution.get("current"))
    edges, categories = _seq(distribution.get("edges")), _seq(distribution.get("categories"))
    if kind == "numeric" and edges:
        return numeric_distribution_figure(edges, reference, current)
    if kind == "categorical" and categories:
        return categorical_distribution_figure(categories, reference, current)
    return None


def confusion_matrix_figure(
    matrix: Sequence[Sequence[float]],
    classes: Sequence[object] | None = None,
    *,
    title: str | None = None,
) -> go.Figure:
    """Heatmap of a confusion matrix (rows = actual, columns = predicted).

    Colour is the row-normalised share (recall per class); cell text is the raw count.
    """
    size = len(matrix)
    rows = [_pad(row, size) for row in matrix]
    names = [plotly_text(c) for c in _seq(classes)][:size]
    names += [str(i) for i in range(len(names), size)]
    shares = [[_share(v, sum(row)) for v in row] for row in rows]
    text = [[f"{int(v):,}" if v == int(v) else _short(v) for v in row] for row in rows]
    fig = go.Figure(
        go.Heatmap(
            z=shares,
            x=names,
            y=names,
            text=text,
            texttemplate="%{text}",
            colorscale=[[0.0, "#f8fafc"], [1.0, "#1d4ed8"]],
            zmin=0.0,
            zmax=1.0,
            colorbar={
                "title": {"text": "share of actual", "side": "right"},
                "tickformat": ".0%",
                "thickness": 12,
            },
            hovertemplate="actual %{y} → predicted %{x}<br>%{text} rows (%{z:.1%} of actual)"
            "<extra></extra>",
            xgap=1,
            ygap=1,
        ),
        layout={"template": TEMPLATE, "height": 150 + 56 * min(size, 12)},
    )
    fig.update_layout(
        title={
            "text": plotly_text(title) if title else None,
            "x": 0.0,
            "xanchor": "left",
            "font": {"size": 13},
        },
        margin={"t": 40 if title else 16},
        xaxis={"title": "predicted", "type": "category", "side": "bottom", "showgrid": False},
        yaxis={
            "title": "actual",
            "type": "category",
            "autorange": "reversed",
            "showgrid": False,
            "rangemode": "normal",
        },
    )
    return fig
