"""Templates, figures and sparklines of the dashboard.

Everything that comes from production data — feature names, category values, segment values,
error messages, quarantined events — is hostile input. Three things keep it inert:

* Jinja2 autoescaping (on for every template), so a value is text in HTML and attributes;
* figure JSON goes into ``<script type="application/json">`` with ``<``, ``>`` and ``&``
  written as ``\\u`` escapes, so no value can close the script, and plotly text labels are
  entity-escaped by :mod:`watchkeeper.charts` (plotly.js reads a little HTML in labels);
* a Content-Security-Policy that allows scripts from this server's own files only: even a
  value that slipped through could not run an inline handler.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
import numpy as np
import orjson
from markupsafe import Markup
from starlette.responses import HTMLResponse

from watchkeeper import __version__
from watchkeeper.evaluation.metrics import CATALOGUE, label
from watchkeeper.html import fmt_compact, fmt_num, fmt_pct
from watchkeeper.server.dashboard.filters import input_time, segment_label, utc_text

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def figure_json(figure: Any) -> Markup:
    """A figure (a ``go.Figure`` or its plain dict) as JSON that is safe inside
    ``<script type="application/json">``: no raw ``<``, ``>`` or ``&`` in it."""
    if isinstance(figure, dict):
        text = orjson.dumps(figure, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    else:
        import plotly.io as pio

        text = pio.to_json(figure, validate=False, pretty=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def sparkline(
    values: Sequence[float | None],
    *,
    threshold: float | None = None,
    alarm: bool = False,
    width: int = 120,
    height: int = 24,
) -> Markup:
    """An inline SVG line of ``values`` (gaps at None) with a dashed ``threshold``.

    Only numbers go into the markup; the last point is red when ``alarm``.

    >>> str(sparkline([0.0, 1.0], width=10, height=10)).count("<polyline")
    1
    """
    y = np.array([np.nan if v is None else v for v in values], dtype=float)
    finite = np.isfinite(y)
    if not finite.any():
        return Markup('<span class="muted">—</span>')
    limit = threshold if threshold is not None and math.isfinite(threshold) else 0.0
    top = max(float(y[finite].max()), limit) * 1.08 or 1.0
    pad, n = 2.0, len(y)
    xs = pad + (width - 2 * pad) * (np.arange(n) / (n - 1) if n > 1 else np.full(n, 0.5))
    ys = height - pad - (height - 2 * pad) * (y / top)
    # runs of consecutive finite values become one polyline each
    edges = np.flatnonzero(np.diff(np.concatenate(([0], finite.astype(np.int8), [0]))))
    px, py = np.round(xs, 1).tolist(), np.round(np.nan_to_num(ys), 1).tolist()
    parts = []
    for begin, stop in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if stop - begin > 1:
            run = zip(px[begin:stop], py[begin:stop], strict=True)
            points = " ".join(f"{a},{b}" for a, b in run)
            parts.append(f'<polyline points="{points}" class="spark-line"/>')
    if threshold is not None and math.isfinite(threshold):
        ty = height - pad - (height - 2 * pad) * (threshold / top)
        parts.append(
            f'<line x1="{pad}" x2="{width - pad}" y1="{ty:.1f}" y2="{ty:.1f}" '
            'class="spark-threshold"/>'
        )
    last = int(np.flatnonzero(finite)[-1])
    cls = "spark-dot alarm" if alarm else "spark-dot"
    parts.append(f'<circle cx="{px[last]}" cy="{py[last]}" r="2.2" class="{cls}"/>')
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="trend">{"".join(parts)}</svg>'
    )


def _query(base: Mapping[str, Any], **changes: Any) -> str:
    """``?a=1&b=2``: ``base`` with ``changes`` (a None value drops the key)."""
    merged = {k: v for k, v in {**base, **changes}.items() if v not in (None, "")}
    return "?" + urlencode(merged) if merged else ""


def _ms(seconds: object) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "—"
    return f"{fmt_num(float(seconds) * 1000)} ms"


FORMATS = {"num": fmt_num, "pct": fmt_pct, "compact": fmt_compact, "ms": _ms}


def metric_value(value: object, metric: str) -> str:
    """A value of a window metric as the catalogue's ``format`` says (a number when the
    metric is not catalogued).

    >>> metric_value(0.0123, "error_rate"), metric_value(0.25, "latency_p95")
    ('1.2%', '250 ms')
    """
    entry = CATALOGUE.get(metric)
    return FORMATS["num" if entry is None else entry.format](value)


@functools.cache
def environment() -> jinja2.Environment:
    source = resources.files("watchkeeper").joinpath("templates/dashboard")
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: source.joinpath(name).read_text(encoding="utf-8")
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=fmt_num,
        pct=fmt_pct,
        compact=fmt_compact,
        utc=utc_text,
        segment=segment_label,
        ms=_ms,
        metric_value=metric_value,
        metric_label=label,
        input_time=input_time,
        pathpart=lambda value: quote(str(value), safe=""),
    )
    env.globals.update(query=_query, version=__version__)
    return env


def page(name: str, context: Mapping[str, Any], *, status: int = 200) -> HTMLResponse:
    """Render the template ``name`` into a response with the dashboard's security headers."""
    from watchkeeper.server.dashboard.assets import asset_urls

    html = environment().get_template(name).render({**context, "assets": asset_urls()})
    return HTMLResponse(html, status, headers=SECURITY_HEADERS)
