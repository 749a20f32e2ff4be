"""A model card as one self-contained HTML page (inline style and SVG, no script, nothing
fetched: it prints and opens offline) or as Markdown."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

__all__ = ["to_html", "to_markdown"]

NOT_COMPUTED = "not computed"
TITLES = {"description": "Description", "owner": "Owner", "intended_use": "Intended use"}


def _when(at: float | None) -> str:
    if at is None:
        return "—"
    return datetime.fromtimestamp(float(at), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):.{digits}g}"


def _interval(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "—"
    text = _num(entry["value"])
    if entry.get("low") is not None and entry.get("high") is not None:
        text += f" [{_num(entry['low'])}, {_num(entry['high'])}]"
    return text


def _share(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1%}"


Table = tuple[list[str], list[list[str]]]


def _sections(card: dict[str, Any]) -> list[tuple[str, list[str], list[Table]]]:
    """Each section: its title, its paragraphs and its tables (header, rows), plain text."""
    meta = card["metadata"]
    perf = card["performance"]
    metric = perf["metric"]
    out: list[tuple[str, list[str], list[Table]]] = []

    about = [f"{TITLES[k]}: {meta[k]}" for k in TITLES if meta.get(k)]
    if not about:
        about = ["No description, owner or intended use was given at registration."]
    about.append(
        f"Version {card['version']} of {card['model']} ({card['task']}), registered "
        f"{_when(card['registered_at'])}; state: {card['state'] or 'registered'}; "
        f"champion: {card['champion'] or '—'}."
    )
    out.append(("Model", about, []))

    ref = card["reference"]
    rows = []
    for c in ref["columns"]:
        if "quantiles" in c:
            q = c["quantiles"]
            summary = (
                f"mean {_num(c.get('mean'))}, sd {_num(c.get('std'))}, "
                f"5/50/95 % {_num(q['0.05'])} / {_num(q['0.5'])} / {_num(q['0.95'])}"
            )
        elif c.get("top"):
            summary = ", ".join(f"{t['value']} {_share(t['share'])}" for t in c["top"])
        else:
            summary = ""
        rows.append([c["name"], c["role"], c["type"], _share(c.get("missing_share")), summary])
    out.append(
        (
            "Training reference",
            [f"{ref['rows']:,} rows, {len(ref['columns'])} columns."],
            [(["column", "role", "type", "missing", "profile"], rows)],
        )
    )

    texts = []
    tables: list[Table] = []
    if perf["reference"] is None:
        texts.append("The reference had no labels: no training baseline.")
    else:
        tables.append(
            (
                ["metric", "on the reference [95 % interval]", "n"],
                [[k, _interval(v), _num(v.get("n"))] for k, v in perf["reference"].items()],
            )
        )
    windows = perf["windows"]
    if windows:
        tables.append(
            (
                ["window", "events", "labels", f"{metric} (realized)", f"{metric} (estimated)",
                 "drifted share"],
                [
                    [
                        _when(w["window_start"]),
                        _num(w.get("count")),
                        _num(w.get("labels")),
                        _interval(w.get(metric)),
                        _interval(w.get(f"estimated_{metric}")),
                        _share(w.get("drifted_share")),
                    ]
                    for w in windows
                ],
            )
        )  # fmt: skip
    else:
        texts.append("No window of this version has been evaluated in production yet.")
    out.append(("Performance: reference and production", texts, tables))

    drift = card["drift"]
    alerts = card["alerts"]
    texts = [f"{drift['windows']} windows checked for drift."]
    tables = []
    if drift["features"]:
        tables.append(
            (
                ["feature", "windows drifted"],
                [[f["feature"], str(f["windows_drifted"])] for f in drift["features"]],
            )
        )
    else:
        texts.append("No feature drifted.")
    if alerts:
        tables.append(
            (["when", "alert", "what"], [[_when(a["at"]), a["kind"], a["summary"]] for a in alerts])
        )
    else:
        texts.append("No alert fired on this version.")
    out.append(("Drift and alerts", texts, tables))

    sl = card["failing_slices"]
    latest = sl["latest"]
    texts, tables = [], []
    if latest is None:
        texts.append("No labelled window yet: failing slices not sought.")
    else:
        result = latest["result"]
        found = result["slices"]
        texts.append(
            f"Newest labelled window {_when(latest['window_start'])}: {result['rows']:,} "
            f"labelled rows, {result['tested']} slices tested ({result.get('test')}, "
            f"Holm-adjusted at {_num(result.get('alpha'))}), {len(found)} failing."
            + (f" {result['reason']}." if result.get("reason") else "")
        )
        if found:
            tables.append(
                (
                    ["slice", "n", f"{result['metric']} in it", "elsewhere", "adjusted p"],
                    [
                        [s["description"], f"{s['n']:,}", _interval(s["slice"]),
                         _interval(s["rest"]), f"{s['adjusted_p_value']:.2g}"]
                        for s in found
                    ],
                )
            )  # fmt: skip
        if len(sl["windows"]) > 1:
            tables.append(
                (
                    ["window", "labels", "failing slices", "worst"],
                    [
                        [_when(w["window_start"]), f"{w['labels']:,}", str(w["reported"]),
                         w["sentence"] or "—"]
                        for w in sl["windows"]
                    ],
                )
            )  # fmt: skip
    out.append(("Failing slices", texts, tables))

    attributions = card["attributions"]
    if attributions is None:
        out.append(("Attributions", [f"Attributions: {NOT_COMPUTED} for this version."], []))
    else:
        rows = [
            [str(f.get("feature")), _share(f.get("share"))]
            for f in attributions.get("features", [])
        ]
        method = attributions.get("method", "")
        texts = [
            f"Method: {method}; each feature's share of the model's mean |attribution| "
            "on the reference."
        ]
        fidelity = attributions.get("fidelity")
        if attributions.get("approximate") and fidelity:
            name = "R²" if fidelity.get("metric") == "r2" else "agreement"
            texts.append(
                f"Approximate: a surrogate of the model, {name} {fidelity['value']:.2f} held out."
            )
        out.append(("Attributions", texts, [(["feature", "share"], rows)]))

    lineage = card["lineage"]
    tables = [
        (
            ["version", "state", "since"],
            [[v["version"], v["state"], _when(v.get("since"))] for v in lineage["versions"]],
        )
    ]
    if lineage["events"]:
        tables.append(
            (
                ["when", "step", "version", "what"],
                [
                    [_when(e["at"]), e["kind"], e["version"], e["summary"]]
                    for e in lineage["events"]
                ],
            )
        )
    out.append(("Retraining and promotion lineage", [], tables))
    return out


def to_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown (GitHub's tables)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"# Model card: {card['model']} {card['version']}", ""]
    for title, texts, tables in _sections(card):
        lines += [f"## {title}", ""]
        for text in texts:
            lines += [text, ""]
        for header, rows in tables:
            lines.append("| " + " | ".join(map(cell, header)) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
            lines.append("")
    lines.append(f"_Generated by {card['generated_by']}._")
    return "\n".join(lines) + "\n"


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2430;margin:2rem auto;
max-width:60rem;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;border-bottom:1px solid #d5dae1;
padding-bottom:.2rem;margin-top:1.8rem}
table{border-collapse:collapse;margin:.6rem 0;width:100%}th,td{text-align:left;padding:.25rem .5rem;
border-bottom:1px solid #e6e9ee;vertical-align:top}th{background:#f3f5f8}
.muted{color:#5b6573}svg{max-width:100%;height:auto}
section{break-inside:avoid-page}
@media print{body{margin:0;max-width:none;font-size:11px}h2{break-after:avoid}.back{display:none}
tr{break-inside:avoid}}
"""


def _chart(card: dict[str, Any]) -> str:
    """An inline SVG of the realized and estimated metric per window (oldest left)."""
    metric = card["performance"]["metric"]
    windows = list(reversed(card["performance"]["windows"]))
    series: list[tuple[str, str, Sequence[float | None]]] = [
        (f"{metric} (realized)", "#1f77b4", [(w.get(metric) or {}).get("value") for w in windows]),
        (
            f"{metric} (estimated)",
            "#ff7f0e",
            [(w.get(f"estimated_{metric}") or {}).get("value") for w in windows],
        ),
    ]
    values = [v for _, _, vs in series for v in vs if v is not None]
    if len(windows) < 2 or not values:
        return ""
    width, height, pad = 640, 180, 30
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5

    def x(i: int) -> float:
        return pad + i * (width - 2 * pad) / (len(windows) - 1)

    def y(v: float) -> float:
        return height - pad - (v - low) * (height - 2 * pad) / (high - low)

    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(metric)} per window">',
        f'<text x="{pad}" y="14" font-size="11" fill="#5b6573">{_num(high)}</text>',
        f'<text x="{pad}" y="{height - 8}" font-size="11" fill="#5b6573">{_num(low)}</text>',
    ]
    for k, (name, colour, vs) in enumerate(series):
        pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vs) if v is not None)
        if pts:
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}"/>'
            )
            parts.append(
                f'<text x="{width - 200}" y="{14 + 14 * k}" font-size="11" fill="{colour}">'
                f"{escape(name)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def to_html(
    card: dict[str, Any],
    *,
    back: str | None = None,
    chart: Callable[[dict[str, Any]], str] = _chart,
) -> str:
    """The card as one HTML page: no script, nothing fetched; ``back``: a link (the
    dashboard's) shown on screen, not in print."""
    title = f"Model card: {card['model']} {card['version']}"
    body = []
    if back is not None:
        body.append(f'<p class="back"><a href="{escape(back)}">← back to the dashboard</a></p>')
    body.append(f"<h1>{escape(title)}</h1>")
    body.append(f'<p class="muted">Generated by {escape(card["generated_by"])}.</p>')
    for name, texts, tables in _sections(card):
        slug = name.lower().split(":")[0].replace(" ", "-")
        body.append(f'<section id="{escape(slug)}"><h2>{escape(name)}</h2>')
        body += [f"<p>{escape(text)}</p>" for text in texts]
        if name.startswith("Performance"):
            body.append(chart(card))
        for header, rows in tables:
            body.append("<table><thead><tr>")
            body += [f"<th>{escape(h)}</th>" for h in header]
            body.append("</tr></thead><tbody>")
            for r in rows:
                body.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>")
            body.append("</tbody></table>")
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no favicon fetched
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
