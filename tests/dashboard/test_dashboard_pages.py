"""Server-side tests of the dashboard pages, on SQLite and PostgreSQL: every page answers, the
figures it shows are those of the data that was sent (counted again here from the events), the
filters change what is shown, bad parameters are 400 pages naming the parameter, and hostile
values from production data are escaped everywhere."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from markupsafe import escape

from tests.dashboard.dashboard_data import (
    HOSTILE_EVENTS,
    HOSTILE_MODEL,
    HOURS,
    MODEL,
    XSS_CATEGORY,
    XSS_FEATURE,
    XSS_SEGMENT,
    XSS_VALUE,
    Filled,
    _reference,
    register,
)
from watchkeeper.example_model import FEATURES
from watchkeeper.server.dashboard import queries

FIGURE = re.compile(r'<script type="application/json" id="fig-([\w-]+)">(.*?)</script>', re.S)
HOSTILE = (XSS_CATEGORY, XSS_SEGMENT, XSS_FEATURE, XSS_VALUE)


def figures(text: str) -> dict[str, dict[str, Any]]:
    """The figures of a page: id → the figure JSON."""
    return {key: json.loads(body) for key, body in FIGURE.findall(text)}


def get(filled: Filled, path: str, status: int = 200) -> str:
    r = filled.client.get(path, follow_redirects=False)
    assert r.status_code == status, (path, r.status_code, r.text[:2000])
    return r.text


def pages(filled: Filled) -> list[str]:
    base = f"/ui/models/{MODEL}"
    return [
        "/",
        f"{base}?range=7d",
        f"{base}?range=all&segment=country%3DDE",
        *(f"{base}/features/{f}?range=7d" for f in FEATURES),
        f"{base}/versions",
        f"{base}/quarantine",
        "/ui/alerts",
        f"/ui/alerts?model={MODEL}",
        f"/ui/models/{HOSTILE_MODEL}",
        f"/ui/models/{HOSTILE_MODEL}/features/{quote(XSS_FEATURE, safe='')}",
    ]


def test_every_page_answers_with_html_and_security_headers(filled: Filled) -> None:
    for path in pages(filled):
        r = filled.client.get(path, follow_redirects=False)
        assert r.status_code == 200, (path, r.text[:2000])
        assert r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in r.text  # no inline script: the CSP would block it anyway


def test_hostile_values_are_escaped_everywhere(filled: Filled) -> None:
    shown = set()
    for path in pages(filled):
        text = get(filled, path)
        for value in HOSTILE:
            assert value not in text, f"{value!r} is unescaped on {path}"
            if str(escape(value)) in text:  # as Jinja2 escapes it: shown as text
                shown.add(value)
        for body in FIGURE.findall(text):
            assert "<" not in body[1] and ">" not in body[1]
    # each hostile value was sent and is shown somewhere, as text
    assert shown == set(HOSTILE)


def _volume(text: str) -> dict[str, float]:
    fig = figures(text)["volume"]
    trace = fig["data"][0]
    return {x: y for x, y in zip(trace["x"], trace["y"], strict=True) if y is not None}


def _iso(start: int) -> str:
    return np.datetime_as_string(np.datetime64(start, "s"), unit="s")


def test_volume_is_the_number_of_events_sent_per_window(filled: Filled) -> None:
    sent = filled.sent
    text = get(filled, f"/ui/models/{MODEL}?range=7d")
    expected = {_iso(w): float(n) for w, n in sent.per_window().items()}
    assert _volume(text) == expected
    assert len(expected) == HOURS
    total = re.search(r'id="events-total">([^<]+)<', text)
    assert total is not None and total.group(1).replace(",", "") == str(len(sent.events))


def test_segment_filter_shows_that_segment_only(filled: Filled) -> None:
    sent = filled.sent
    everything = _volume(get(filled, f"/ui/models/{MODEL}?range=7d"))
    for country in ("DE", "ES"):
        segment = f"country={country}"
        text = get(filled, f"/ui/models/{MODEL}?range=7d&segment={quote(segment)}")
        expected = {_iso(w): float(n) for w, n in sent.per_window(segment).items()}
        assert _volume(text) == expected
        assert sum(expected.values()) < sum(everything.values())
        assert f'<option value="{segment}" selected>' in text


def test_time_range_filter_limits_the_windows(filled: Filled) -> None:
    sent = filled.sent
    last = max(sent.per_window())
    start = last - 3 * 3600
    text = get(filled, f"/ui/models/{MODEL}?start={start}&end={last + 3600}")
    assert sorted(_volume(text)) == [_iso(w) for w in range(start, last + 3600, 3600)]
    six = _volume(get(filled, f"/ui/models/{MODEL}?range=6h"))
    assert 5 <= len(six) <= 7 and len(six) < len(
        _volume(get(filled, f"/ui/models/{MODEL}?range=all"))
    )


def test_error_rate_and_latency_are_those_of_the_api(filled: Filled) -> None:
    """The charts plot the evaluator's points: the same values the JSON API serves, and the
    error rate is the share of failed events sent in each hour."""
    sent = filled.sent
    figs = figures(get(filled, f"/ui/models/{MODEL}?range=7d"))
    errors = figs["errors"]["data"][0]
    for x, y in zip(errors["x"], errors["y"], strict=True):
        start = int(np.datetime64(x, "s").astype(int))
        window = sent.in_window(start)
        assert y == pytest.approx(sum(e["status"] == "error" for e in window) / len(window))
    api = filled.client.get(f"/v1/models/{MODEL}/metrics", params={"metric": "latency_p95"})
    expected = [p["value"] * 1000 for p in api.json()["points"]]
    p95 = next(t for t in figs["latency"]["data"] if t["name"] == "p95")
    assert p95["y"] == pytest.approx(expected)


def test_features_table_shows_the_newest_window(filled: Filled) -> None:
    sent = filled.sent
    text = get(filled, f"/ui/models/{MODEL}?range=7d")
    rows = re.findall(r'<tr class="[^"]*" data-feature="([^"]+)">(.*?)</tr>', text, re.S)
    assert [name for name, _ in rows] != [] and {html.unescape(n) for n, _ in rows} == set(FEATURES)
    last = max(sent.per_window())
    api = filled.client.get(
        f"/v1/models/{MODEL}/metrics", params={"metric": "drift_statistic", "feature": "income"}
    ).json()["points"]
    newest = next(p for p in api if p["window_start"] == last)
    income = dict(rows)["income"]
    statistic = re.search(r'<td class="n">([^ ]+) <span class="muted">/ ([^<]+)</span>', income)
    assert statistic is not None
    assert float(statistic.group(1)) == pytest.approx(newest["value"], rel=1e-3)
    assert float(statistic.group(2)) == pytest.approx(newest["detail"]["threshold"], rel=1e-3)
    # unseen plan values of the newest window, counted from the events sent
    window = sent.in_window(last)
    _, reference = filled.app.state.store.reference(MODEL, "v1")
    known = set(reference.columns["plan"].categories)
    unseen = sum(e["features"]["plan"] not in known for e in window)
    assert unseen >= HOSTILE_EVENTS
    plan_cells = re.findall(r'<td class="n[^"]*">([^<]*)</td>', dict(rows)["plan"])
    assert str(unseen) in plan_cells
    # the sparkline has one point per window of the range (at most 48)
    assert income.count("spark-line") == 1


@pytest.mark.parametrize("sort", ["statistic", "effect", "missing", "feature"])
def test_sorting_orders_the_features_table(filled: Filled, sort: str) -> None:
    for order in ("asc", "desc"):
        text = get(filled, f"/ui/models/{MODEL}?range=7d&sort={sort}&order={order}")
        names = [html.unescape(n) for n in re.findall(r'data-feature="([^"]+)"', text)]
        if sort == "feature":
            assert names == sorted(names, reverse=order == "desc")
            continue
        column = {"statistic": 2, "effect": 4, "missing": 6}[sort]
        cells = re.findall(r'data-feature="[^"]+">(.*?)</tr>', text, re.S)
        values = [re.findall(r"<td[^>]*>(.*?)</td>", c, re.S)[column] for c in cells]
        numbers = [_number(v) for v in values]
        present = [v for v in numbers if v is not None]
        assert present == sorted(present, reverse=order == "desc")
        assert len(present) >= 5


def _number(cell: str) -> float | None:
    text = re.sub(r"<[^>]+>", " ", cell).split("/")[0].strip().replace(",", "")
    if text in ("—", ""):
        return None
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def test_feature_page_distribution_is_the_window_histogram(filled: Filled) -> None:
    """The current bars are the window's events counted on the reference's frozen bin edges
    (numpy's histogram as the oracle)."""
    sent = filled.sent
    last = max(sent.per_window())
    store = filled.app.state.store
    _, reference = store.reference(MODEL, "v1")
    edges = np.asarray(reference.columns["income"].edges)
    text = get(filled, f"/ui/models/{MODEL}/features/income?range=7d&window={last}")
    fig = figures(text)["distribution"]
    current = next(t for t in fig["data"] if t["name"] == "Current")
    values = np.array([e["features"]["income"] for e in sent.in_window(last)], dtype=float)
    values = values[np.isfinite(values)]
    inside = values[(values >= edges[0]) & (values <= edges[-1])]
    counts, _ = np.histogram(inside, edges)
    density = counts / (values.size * np.diff(edges))
    assert np.allclose(current["y"][:-1], density, rtol=1e-9, atol=1e-15)


def test_feature_page_window_parameter_picks_the_window(filled: Filled) -> None:
    sent = filled.sent
    first, last = min(sent.per_window()), max(sent.per_window())
    a = get(filled, f"/ui/models/{MODEL}/features/plan?range=7d&window={first}")
    b = get(filled, f"/ui/models/{MODEL}/features/plan?range=7d&window={last}")
    assert figures(a)["distribution"] != figures(b)["distribution"]
    assert html.escape(XSS_CATEGORY, quote=False) in b and html.escape(XSS_CATEGORY) not in a


@pytest.mark.parametrize(
    ("query", "status", "named"),
    [
        ("range=fortnight", 400, "range"),
        ("start=yesterday", 400, "start"),
        ("start=1700000000&end=1600000000", 400, "end"),
        ("segment=country%3DXX", 400, "segment"),
        ("sort=colour", 400, "sort"),
        ("order=sideways", 400, "order"),
        ("version=v9", 404, "v9"),
    ],
)
def test_bad_parameters_are_error_pages_naming_them(
    filled: Filled, query: str, status: int, named: str
) -> None:
    text = get(filled, f"/ui/models/{MODEL}?{query}", status)
    message = re.search(
        r'<div class="panel error" id="error" data-status="(\d+)">\s*<p>(.*?)</p>', text, re.S
    )
    assert message is not None and message.group(1) == str(status)
    assert named in html.unescape(message.group(2))


def test_unknown_things_are_404_pages(filled: Filled) -> None:
    assert "not registered" in get(filled, "/ui/models/nope", 404)
    assert "no profiled feature" in get(filled, f"/ui/models/{MODEL}/features/nope", 404)
    assert "window" in get(filled, f"/ui/models/{MODEL}/features/age?window=12", 400)
    assert "offset" in get(filled, f"/ui/models/{MODEL}/quarantine?offset=-1", 400)


def test_quarantine_lists_the_rejected_event_with_its_reason(filled: Filled) -> None:
    text = get(filled, f"/ui/models/{MODEL}/quarantine")
    assert "rejected-1" in text
    assert re.search(r"<b>features\.age</b>|<b>age</b>", text), text[-3000:]
    assert f"{filled.sent.rejected} in all" in text


def test_versions_page_shows_the_champion(filled: Filled) -> None:
    text = get(filled, f"/ui/models/{MODEL}/versions")
    assert "champion" in text and "4,000" in text


def test_overview_lists_each_model_with_its_newest_window(filled: Filled) -> None:
    text = get(filled, "/")
    for name in (MODEL, HOSTILE_MODEL):
        assert f'data-model="{name}"' in text
    last = max(filled.sent.per_window())
    day = [n for w, n in filled.sent.per_window().items() if w > last - 24 * 3600]
    assert f"{sum(day):,}" in text or str(sum(day)) in text


def test_sparkline_windows_are_evenly_spaced() -> None:
    starts = list(range(0, 720 * 3600, 3600))
    picked = queries.sample(starts)
    assert len(picked) == queries.SPARK_POINTS and picked[0] == 0 and picked[-1] == starts[-1]
    gaps = np.diff(picked)
    assert gaps.max() - gaps.min() <= 3600


def test_downsampling_averages_runs_of_windows() -> None:
    from watchkeeper.server.dashboard.views import downsample

    rng = np.random.default_rng(0)
    values = rng.normal(size=2500)
    values[rng.random(2500) < 0.1] = np.nan
    times = list(range(2500))
    xs, ys, run = downsample(times, {"v": [None if np.isnan(v) else v for v in values]}, 1000)
    assert run == 3 and xs == times[::3]
    for i, mean in enumerate(ys["v"]):
        chunk = values[3 * i : 3 * i + 3]
        expected = np.nanmean(chunk) if np.isfinite(chunk).any() else None
        assert mean == (None if expected is None else pytest.approx(expected))


def test_a_model_without_events_has_empty_pages(tmp_path: Path) -> None:
    import warnings

    import pyarrow as pa

    from tests.dashboard.dashboard_data import register
    from watchkeeper.server.app import create_app
    from watchkeeper.settings import load_settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient

    app = create_app(load_settings(environ={}, data_dir=str(tmp_path)))
    client = TestClient(app, base_url="http://localhost")  # a name the server answers to
    try:
        assert "No model is registered yet" in client.get("/").text
        register(
            client, "empty", pa.table({"x": [1.0, 2.0, 3.0], "p": ["a", "b", "a"]}), "prediction=p"
        )
        assert "No evaluated window yet" in client.get("/").text
        for path in (
            "/ui/models/empty",
            "/ui/models/empty/features/x",
            "/ui/models/empty/versions",
        ):
            r = client.get(path)
            assert r.status_code == 200, (path, r.text[:1000])
            assert "No data in this range" in r.text or path.endswith("versions")
    finally:
        app.state.store.close()


def test_promotions_are_marked_on_the_time_axis_of_the_model_page(tmp_path: Path) -> None:
    """A promotion (from the model's history) is a labelled vertical line at its time on each
    chart of the model page; a chart of windows all after it does not draw it."""
    import time
    import warnings

    import pyarrow as pa

    from tests.dashboard.dashboard_data import register, settle
    from watchkeeper.charts_time import time_series_spec
    from watchkeeper.server.app import create_app
    from watchkeeper.settings import load_settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient

    app = create_app(load_settings(environ={}, data_dir=str(tmp_path)))
    client = TestClient(app, base_url="http://localhost")  # a name the server answers to
    try:
        reference = pa.table({"x": [1.0, 2.0, 3.0] * 10, "p": ["a", "b", "a"] * 10})
        register(client, "m", reference, "prediction=p&window_seconds=60", "v1")
        register(client, "m", reference, "prediction=p&window_seconds=60&champion=false", "v2")
        now = time.time()
        events = [
            {
                "version": "v1",
                "prediction_id": f"p{i}",
                "features": {"x": float(i)},
                "prediction": "a",
                "timestamp": now - 300 + 10 * i,
            }
            for i in range(20)
        ]
        r = client.post("/v1/models/m/predictions", json={"events": events})
        assert r.status_code in (200, 202), r.text
        settle(app)
        r = client.post("/v1/models/m/promote", json={"version": "v2"})
        assert r.status_code == 200, r.text
        [promoted] = client.get("/v1/models/m/history", params={"kind": "promoted"}).json()[
            "events"
        ]
        figs = figures(client.get("/ui/models/m?version=v1").text)
        assert {"volume", "errors", "drift"} <= set(figs)
        for key, fig in figs.items():
            assert "shapes" in fig["layout"], (key, sorted(figs))
            [line] = fig["layout"]["shapes"]
            [label] = fig["layout"]["annotations"]
            at = datetime.fromisoformat(line["x0"]).replace(tzinfo=UTC).timestamp()
            assert at == pytest.approx(promoted["at"], abs=1), key  # shown to the second
            assert line["x1"] == line["x0"] and label["text"] == "v2 promoted"
        later = time_series_spec([promoted["at"] + 60], {"n": [1.0]}, marks=[(promoted["at"], "x")])
        assert "shapes" not in later["layout"]
    finally:
        app.state.store.close()


def test_the_window_length_reads_right_below_a_minute(filled: Filled) -> None:
    """A model with 20-second windows (as the demo's) says so, not "windows of 0 min"; one of
    hours says its minutes."""
    client = filled.client
    register(client, "short-windows", _reference(), "target=churned&window_seconds=20")
    page = client.get("/ui/models/short-windows").text
    assert "windows of 20 s" in page or "window of 20 s" in page, page[:2000]
    assert "of 0 min" not in page
    assert "of 60 min" in client.get(f"/ui/models/{MODEL}").text
