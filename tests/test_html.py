"""Tests of the self-contained HTML report (watchkeeper.html) and the chart builders."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
from markupsafe import escape

from watchkeeper.html import fmt_compact, fmt_num, fmt_p, fmt_pct, render_html

XSS = "</script><img src=x onerror=alert(1)>"
XSS_COLUMN = '<b onmouseover="alert(2)">col</b>'


# --------------------------------------------------------------------------- fixture builder


def _entry(name: str, kind: str, method: str, drifted: bool | None, **extra: Any) -> dict[str, Any]:
    stat = (0.031, 0.004) if kind == "numeric" else (812.5, 3.2)
    entry = {"column": name, "type": kind, "method": method, "decision": "calibrated"}
    entry |= {"statistic": stat[0] if drifted else stat[1], "threshold": 0.012, "p_value": None}
    entry |= {"drifted": drifted, "effect_size": None, "n_reference": 100_000}
    entry |= {"n_current": 50_000, "note": None, "distribution": None}
    return entry | extra


def _numeric(
    name: str,
    rng: np.random.Generator,
    shift: float,
    effect: float | None,
    *,
    n_ref: int = 100_000,
    n_cur: int = 50_000,
) -> dict[str, Any]:
    """A KS entry whose distribution is a real histogram over reference-quantile edges."""
    ref, cur = rng.normal(40.0, 11.0, n_ref), rng.normal(40.0 + shift, 11.0, n_cur)
    edges = np.quantile(ref, np.linspace(0.0, 1.0, 21))

    def counts(values: np.ndarray) -> list[int]:
        inner, _ = np.histogram(values[(values >= edges[0]) & (values <= edges[-1])], edges)
        return [int((values < edges[0]).sum()), *map(int, inner), int((values > edges[-1]).sum())]

    dist = {"kind": "numeric", "edges": edges.tolist(), "reference": counts(ref)}
    return _entry(
        name,
        "numeric",
        "ks",
        shift != 0,
        effect_size=effect,
        p_value=1e-9 if shift else 0.41,
        n_reference=n_ref,
        n_current=n_cur,
        distribution=dist | {"current": counts(cur)},
    )


def _categorical(
    name: str,
    categories: list[str],
    ref: list[int],
    cur: list[int],
    *,
    drifted: bool,
    effect: float,
) -> dict[str, Any]:
    dist = {"kind": "categorical", "categories": categories, "reference": ref, "current": cur}
    return _entry(
        name,
        "categorical",
        "chisquare",
        drifted,
        effect_size=effect,
        threshold=16.9,
        distribution=dist,
    )


def _quality(kind: str, missing_cur: float = 0.0002, **current: Any) -> dict[str, Any]:
    """Quality stats in the shape of the library's (numeric and categorical keys differ)."""

    def side(rows: int, share: float) -> dict[str, Any]:
        base = {
            "rows": rows,
            "missing": round(rows * share),
            "missing_share": share,
            "type_errors": 0,
        }
        if kind == "numeric":
            return base | {"out_of_range": 0, "min": 1.0, "max": 90.0, "mean": 40.1, "std": 11.0}
        return base | {"unseen": 0, "unseen_share": 0.0, "distinct": 3, "top_unseen": []}

    return {
        "type": kind,
        "reference": side(100_000, 0.0001),
        "current": side(50_000, missing_cur) | current,
        "missing_share_change": missing_cur - 0.0001,
    }


def _metrics(
    n: int, acc: tuple[float, ...], f1: tuple[float, ...], auc: Any, matrix: list[list[int]]
) -> dict[str, Any]:
    def ci(v: tuple[float, ...]) -> dict[str, float]:
        return {"value": v[0], "ci_low": v[1], "ci_high": v[2]}

    return {
        "n": n,
        "accuracy": ci(acc),
        "f1_macro": ci(f1),
        "roc_auc": auc,
        "confusion_matrix": matrix,
        "classes": ["0", "1"],
    }


def make_report(extra_numeric: int = 0, seed: int = 7) -> dict[str, Any]:
    """A realistic report dict in the shape of ``Report.to_dict()``.

    Drift entries are inserted in a shuffled order so the renderer's sorting is tested.
    """
    rng = np.random.default_rng(seed)
    drift: dict[str, Any] = {
        "age": _numeric("age", rng, 6.0, 0.55),
        "income": _numeric("income", rng, 0.0, 0.01),
        "city": _categorical(
            "city",
            ["paris", "london", "berlin", "(other)", "(unseen)"],
            [40_000, 30_000, 20_000, 10_000, 0],
            [10_000, 15_000, 10_000, 10_000, 5_000],
            drifted=True,
            effect=0.31,
        ),
        XSS_COLUMN: _categorical(
            XSS_COLUMN,
            ["a", XSS, "(unseen)"],
            [60_000, 40_000, 0],
            [30_000, 19_000, 1_000],
            drifted=False,
            effect=0.02,
        ),
        "constant": _numeric("constant", rng, 0.0, 0.0)
        | {
            "distribution": {
                "kind": "numeric",
                "edges": [5.0, 5.0],
                "reference": [0, 100_000, 0],
                "current": [0, 50_000, 0],
            }
        },
        "empty_window": _entry(
            "empty_window",
            "numeric",
            "ks",
            None,
            statistic=None,
            threshold=None,
            n_current=0,
            note="current window is empty",
        ),
    }
    for i in range(extra_numeric):
        name = f"feature_{i:03d}"
        shift, effect = (3.0 if i % 7 == 0 else 0.0), float(rng.uniform(0, 0.5))
        drift[name] = _numeric(name, rng, shift, effect, n_ref=5_000, n_cur=2_000)
    items = list(drift.items())
    random.Random(seed).shuffle(items)
    drift = dict(items)

    quality = {name: _quality(entry["type"]) for name, entry in drift.items()}
    quality["city"] = _quality(
        "categorical", unseen=5_000, unseen_share=0.1, top_unseen=["lyon", "madrid"]
    )
    quality[XSS_COLUMN] = _quality("categorical", unseen=1_000, top_unseen=[XSS])
    quality["age"] = _quality("numeric", missing_cur=0.05, out_of_range=120)
    drifted = [n for n, e in drift.items() if e["drifted"]]
    finding = {
        "column": "constant",
        "severity": "warning",
        "kind": "constant_column",
        "message": "constant is constant in the reference",
    }
    xss_finding = {
        "column": XSS_COLUMN,
        "severity": "error",
        "kind": "type_errors",
        "message": f"value {XSS} could not be parsed",
    }
    no_auc = {"value": None, "reason": "only one class in the window"}
    return {
        "watchkeeper_version": "0.1.0",
        "created_at": "2026-11-21T22:40:00Z",
        "reference": {"rows": 100_000, "columns": len(drift)},
        "current": {"rows": 50_000, "columns": len(drift)},
        "settings": {"decision": "calibrated", "false_alarm_rate": 0.01, "drift_share": 0.5},
        "summary": {
            "columns_checked": len(drift),
            "drifted_columns": drifted,
            "n_drifted": len(drifted),
            "drift_share": len(drifted) / len(drift),
            "dataset_drift": False,
        },
        "drift": drift,
        "quality": quality,
        "findings": [finding, xss_finding],
        "performance": {
            "task": "binary",
            "target": "y",
            "prediction": "p",
            "reference": _metrics(
                1000,
                (0.912, 0.894, 0.929),
                (0.88, 0.86, 0.9),
                {"value": 0.95, "ci_low": 0.94, "ci_high": 0.96},
                [[600, 40], [48, 312]],
            ),
            "current": _metrics(
                800, (0.851, 0.826, 0.875), (0.83, 0.8, 0.86), no_auc, [[450, 70], [49, 231]]
            ),
        },
        "schema": {"columns": {name: {"type": e["type"]} for name, e in drift.items()}},
    }


# --------------------------------------------------------------------------- HTML inspection


class _Collector(HTMLParser):
    """Records every tag with its attributes, and text per element id / table cell."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.json_scripts: list[str] = []
        self.styles: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "script" and attributes.get("type") == "application/json":
            self._in = "json"
            self.json_scripts.append("")
        elif tag == "style":
            self._in = "style"
            self.styles.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "json":
            self.json_scripts[-1] += data
        elif self._in == "style":
            self.styles[-1] += data


def _parse(document: str) -> _Collector:
    collector = _Collector()
    collector.feed(document)
    collector.close()
    return collector


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return make_report()


@pytest.fixture(scope="module")
def document(report: dict[str, Any]) -> str:
    return render_html(report)


# --------------------------------------------------------------------------- tests


def test_one_offline_document(document: str) -> None:
    assert document.lstrip().startswith("<!DOCTYPE html>")
    assert document.count("<!DOCTYPE html>") == 1
    parsed = _parse(document)
    assert [t for t, _ in parsed.tags].count("html") == 1
    assert [t for t, _ in parsed.tags].count("body") == 1
    for tag, attrs in parsed.tags:
        assert tag not in ("link", "iframe", "object", "embed", "base"), tag
        for key in ("src", "href", "action", "data", "srcset"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, key, value)
        if tag == "script":
            assert "src" not in attrs
    css = "".join(parsed.styles)
    assert "@import" not in css and "url(" not in css
    # plotly.js itself is inlined
    assert "Plotly" in document and len(document) > 1_000_000


def test_every_column_name_present(report: dict[str, Any], document: str) -> None:
    for name in report["drift"]:
        assert escape(name) in document, name


def test_drift_table_sorted_by_effect_size(report: dict[str, Any], document: str) -> None:
    rows = [
        attrs["data-name"]
        for tag, attrs in _parse(document).tags
        if tag == "tr" and attrs.get("data-drifted") is not None
    ]
    sized = [e for e in report["drift"].values() if e["effect_size"] is not None]
    expected = [e["column"].lower() for e in sorted(sized, key=lambda e: -e["effect_size"])]
    expected += [e["column"].lower() for e in report["drift"].values() if e["effect_size"] is None]
    assert rows == expected
    assert rows[0] == "age"
    assert rows[-1] == "empty_window"


def test_drifted_panels_come_first(document: str) -> None:
    panels = [
        attrs
        for tag, attrs in _parse(document).tags
        if tag == "details" and "dist" in (attrs.get("class") or "")
    ]
    flags = [attrs["data-drifted"] for attrs in panels]
    assert flags == sorted(flags, key=lambda f: f != "yes")
    assert flags[0] == "yes" and "open" in panels[0]


def test_data_values_are_escaped(document: str) -> None:
    parsed = _parse(document)
    assert not any(tag == "img" for tag, _ in parsed.tags)
    assert not any(tag == "b" and "onmouseover" in attrs for tag, attrs in parsed.tags)
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    assert XSS not in document
    assert "</script><img" not in document.lower()
    assert escape(XSS) in document  # shown, escaped, in the findings message
    # the category reaches the figure JSON without any raw "<"
    figures = [json.loads(text) for text in parsed.json_scripts]
    labels = [
        x
        for fig in figures
        for trace in fig["data"]
        for x in trace.get("x") or []
        if isinstance(x, str)
    ]
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in labels
    assert all("<" not in text and ">" not in text for text in parsed.json_scripts)


def test_figure_json_is_valid_and_complete(report: dict[str, Any], document: str) -> None:
    figures = [json.loads(text) for text in _parse(document).json_scripts]
    with_plots = [e for e in report["drift"].values() if e.get("distribution")]
    assert len(figures) == len(with_plots) + 2  # + two confusion matrices
    for figure in figures:
        assert {"data", "layout"} <= set(figure)
        assert len(json.dumps(figure["layout"]["template"])) < 2_000  # no bulky default template


def test_numbers_are_formatted(document: str) -> None:
    assert "100,000" in document and "50,000" in document
    assert "1.0e-9" in document  # p-value
    assert "lyon, madrid" in document  # most frequent unseen categories
    assert "2026-11-21 22:40 UTC" in document
    assert "0.912" in document and "[0.894, 0.929]" in document
    assert "0.01%" in document and "5.0%" in document  # missing shares ref → cur
    assert "1e-09" not in document.split("<script>", maxsplit=1)[0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "—"),
        (100000, "100,000"),
        (0.031, "0.031"),
        (40.1, "40.1"),
        (0.0, "0"),
        (123456.7, "123,457"),
        (3.2e-5, "3.2e-5"),
        (float("nan"), "—"),
        (float("inf"), "∞"),
        (True, "yes"),
        (-0.004912, "−0.004912"),
        (9999.7, "10,000"),
        (-1234, "−1,234"),
    ],
)
def test_fmt_num(value: object, expected: str) -> None:
    assert fmt_num(value) == expected


def test_fmt_p_and_pct() -> None:
    assert fmt_p(None) == "—"
    assert fmt_p(0.41) == "0.410"
    assert fmt_p(1e-9) == "1.0e-9"
    assert fmt_p(0.0) == "< 1e-300"
    assert fmt_pct(0.0001) == "0.01%"
    assert fmt_pct(0.08) == "8.0%"
    assert fmt_pct(0.0) == "0%"
    assert fmt_pct(None) == "—"
    assert fmt_compact(174395.49) == "174.4k"
    assert fmt_compact(2.5e6) == "2.5M"
    assert fmt_compact(4333.0) == "4333"


def test_note_and_missing_statistic(document: str) -> None:
    assert "current window is empty" in document
    start = document.index('data-name="empty_window"')
    row = document[start : document.index("</tr>", start)]
    assert "—" in row and "n/a" in row


def test_sections_and_performance(document: str) -> None:
    order = [
        document.index(f'id="{s}"')
        for s in ("summary", "findings", "drift", "distributions", "quality", "performance")
    ]
    assert order == sorted(order)
    assert "ROC AUC" in document and "only one class in the window" in document
    assert "Confusion matrix" in document
    assert "constant is constant in the reference" in document
    assert "calibrated" in document and "1.0%" in document  # decision and false-alarm rate


def test_without_performance_and_minimal_report(report: dict[str, Any]) -> None:
    document = render_html({**report, "performance": None})
    assert 'id="performance"' not in document
    assert "Confusion matrix" not in document
    minimal = render_html({})
    assert minimal.count("<!DOCTYPE html>") == 1
    assert "No drift tests were run." in minimal
    assert "Reference <b>—</b>" in minimal and '<div class="value">0</div>' in minimal


def test_nested_metric_groups(report: dict[str, Any]) -> None:
    """Metrics grouped like the classification aggregate's (macro / per_class) are flattened."""

    def metrics(f1: float) -> dict[str, Any]:
        value = {"value": f1, "ci_low": f1 - 0.02, "ci_high": f1 + 0.02, "ci_method": "bootstrap"}
        return {
            "n": 500,
            "task": "multiclass",
            "classes": ["a", "b"],
            "positive_class": None,
            "accuracy": value,
            "macro": {"f1": value, "precision": value},
            "per_class": {"a": {"support": 10, "f1": value}, XSS: {"support": 3, "f1": value}},
            "confusion_matrix": [[5, 5], [1, 2]],
        }

    perf = {"task": "multiclass", "reference": metrics(0.9), "current": metrics(0.7)}
    document = render_html({**report, "performance": perf})
    document = document[: document.index("<script>")]  # leave out the plotly.js bundle
    assert "F1 (macro)" in document and "Precision (macro)" in document
    assert "Per-class metrics" in document and escape(XSS) in document
    assert "Positive class" not in document and "Support" not in document
    assert "−0.2" in document  # change, with a true minus sign
    assert "bootstrap interval" in document


def test_missing_fields_do_not_break_rendering(report: dict[str, Any]) -> None:
    for key in report:
        assert "<!DOCTYPE html>" in render_html({**report, key: None})
    entry = report["drift"]["city"]
    for key in [*entry, *entry["distribution"]]:
        broken = {**entry, key: None, "distribution": {**entry["distribution"], key: None}}
        assert "city" in render_html({**report, "drift": {"city": broken}})


def test_hundred_columns_render_quickly() -> None:
    report = make_report(extra_numeric=100)
    render_html(make_report())  # warm caches (template, plotly.js bundle)
    start = time.perf_counter()
    document = render_html(report)
    elapsed = time.perf_counter() - start
    assert elapsed < 10.0, elapsed
    for name in report["drift"]:
        assert escape(name) in document
    # only a handful of panels are open (and plotted) on load
    panels = [a for t, a in _parse(document).tags if t == "details" and "dist" in a["class"]]
    assert len(panels) == len(report["drift"])
    opened = [a for a in panels if "open" in a]
    assert 0 < len(opened) <= 6


def test_import_does_not_load_plotly() -> None:
    code = "import sys, watchkeeper.html; assert 'plotly' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- charts


def test_numeric_figure_density_and_outer_bins() -> None:
    from watchkeeper.charts import numeric_distribution_figure

    edges = [0.0, 1.0, 3.0]
    fig = numeric_distribution_figure(edges, [0, 50, 50, 0], [10, 20, 40, 30])
    reference, current = fig.data
    assert list(reference.y) == pytest.approx([0.5, 0.25])  # 50/(100*1), 50/(100*2)
    assert list(reference.width) == [1.0, 2.0]
    assert list(current.x) == edges  # step line over the edges
    assert list(current.y) == pytest.approx([0.2, 0.2, 0.2])
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "below ref min" in texts and "10.0%" in texts
    assert "above ref max" in texts and "30.0%" in texts
    inside = numeric_distribution_figure(edges, [0, 50, 50, 0], [0, 5, 5, 0])
    assert not inside.layout.annotations


def test_numeric_figure_degenerate_bins() -> None:
    from watchkeeper.charts import numeric_distribution_figure

    fig = numeric_distribution_figure([5.0, 5.0], [0, 100, 0], [0, 40, 10])
    assert fig.layout.xaxis.type == "category"
    assert list(fig.data[0].y) == [1.0]
    assert list(fig.data[1].x) == ["= 5"]
    empty = numeric_distribution_figure([0.0, 1.0], [0, 0, 0], [0, 0, 0])
    assert list(empty.data[0].y) == [0.0]


def test_categorical_and_confusion_figures() -> None:
    from watchkeeper.charts import (
        categorical_distribution_figure,
        confusion_matrix_figure,
        distribution_figure,
    )

    fig = categorical_distribution_figure(["1", "2", "<x>"], [1, 1, 2], [0, 0, 4])
    assert fig.layout.xaxis.type == "category"  # "1", "2" must not become a numeric axis
    assert list(fig.data[0].x) == ["1", "2", "&lt;x&gt;"]
    assert list(fig.data[1].y) == [0.0, 0.0, 1.0]
    matrix = confusion_matrix_figure([[3, 1], [0, 4]], ["neg", "pos"])
    assert matrix.data[0].z[0] == pytest.approx((0.75, 0.25))
    assert distribution_figure(None) is None
    assert distribution_figure({"kind": "text"}) is None


# --------------------------------------------------------------------------- colours that mean


def _card_class(document: str, label: str) -> str:
    end = document.index(f'<div class="label">{label}</div>')
    start = document.rindex('<div class="panel card', 0, end)
    return document[start:end].split('"')[1].removeprefix("panel card").strip()


def _change_class(document: str, key: str) -> str:
    start = document.index(f'title="{key}"')
    row = document[start : document.index("</tr>", start)]
    return re.findall(r'<td class="([^"]*)"', row)[-1].removeprefix("n").strip()


def _ci(value: float, half: float = 0.01) -> dict[str, float]:
    return {"value": value, "ci_low": value - half, "ci_high": value + half}


def test_a_change_is_coloured_by_whether_it_is_good(report: dict[str, Any]) -> None:
    """An improvement is green and a degradation red, whichever way the metric points; a
    change within the intervals is not coloured."""
    regression = {
        "task": "regression",
        "reference": {
            "n": 900,
            "rmse": _ci(2.0),
            "mae": _ci(1.5),
            "r2": _ci(0.6),
            "mape": _ci(0.2),
        },
        "current": {
            "n": 900,
            "rmse": _ci(1.5),
            "mae": _ci(1.8),
            "r2": _ci(0.4),
            "mape": _ci(0.205),
        },
    }
    document = render_html({**report, "performance": regression})
    assert _change_class(document, "rmse") == "good"  # error down: better
    assert _change_class(document, "mae") == "bad"  # error up: worse
    assert _change_class(document, "r2") == "bad"
    assert _change_class(document, "mape") == ""  # intervals overlap: no verdict
    assert _card_class(document, "R²") == "bad"  # the headline, worse

    better = {
        "task": "binary",
        "reference": {"n": 900, "accuracy": _ci(0.85), "log_loss": _ci(0.40)},
        "current": {"n": 900, "accuracy": _ci(0.91), "log_loss": _ci(0.30)},
    }
    document = render_html({**report, "performance": better})
    assert _change_class(document, "accuracy") == "good"
    assert _change_class(document, "log_loss") == "good"
    assert _card_class(document, "Accuracy") == "good"


def test_dataset_drift_is_green_only_when_nothing_drifted_and_all_was_checked(
    report: dict[str, Any],
) -> None:
    summary = report["summary"]
    assert summary["dataset_drift"] is False and summary["n_drifted"] == 2
    assert _card_class(render_html(report), "Dataset drift") == "warn"  # columns drifted

    none_drifted = {**summary, "drifted_columns": [], "n_drifted": 0, "drift_share": 0.0}
    drift = {n: e | {"drifted": False} for n, e in report["drift"].items()}
    clean = {**report, "summary": none_drifted | {"drift_usable": True}, "drift": drift}
    assert _card_class(render_html(clean), "Dataset drift") == "good"

    unchecked = {"x": "missing from the current data"}
    partial = {**clean, "summary": none_drifted | {"drift_usable": False}}
    partial["summary"]["unchecked_columns"] = unchecked
    document = render_html(partial)
    assert _card_class(document, "Dataset drift") == "warn"
    assert _card_class(document, "Drifted columns") == "warn"
    assert "1 could not be checked</b>: x" in document
