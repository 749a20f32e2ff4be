"""The dashboard as a person uses it: Debian's Chromium, driven by Playwright, against
``watchkeeper serve`` (tokens on) filled by a replay of the demo stream.

Every page loads with no console error and its charts hold data points; the time range and the
segment filter change what the charts show; an admin silences an alert from the page; a
category value that is an ``<img onerror>`` is shown as text and runs nothing. Screenshots go
to ``tests/artifacts/``; with ``WATCHKEEPER_UPDATE_SCREENSHOTS=1`` the model page's is copied to
``docs/images/model-page.png`` (the README shows it).

Without Chromium (``/usr/bin/chromium``, or ``WATCHKEEPER_CHROMIUM``) or Playwright the tests
skip, except under CI (env ``CI`` set), where they fail. Marked ``slow``: the default run
leaves them out, ``pytest -m slow`` or CI runs them.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.dashboard.browser import TIMEOUT_MS, launch
from tests.dashboard.dashboard_data import (
    HOSTILE_MODEL,
    MODEL,
    XSS_CATEGORY,
    XSS_FEATURE,
    XSS_SEGMENT,
    Sent,
    fill,
)
from watchkeeper.example_model import FEATURES
from watchkeeper.server.dashboard import alerts_view
from watchkeeper.settings import Settings
from watchkeeper.store.state import Store
from watchkeeper.store.tokens import create_token

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
pytestmark = pytest.mark.slow  # a browser and a filled server: about two minutes


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


@dataclass
class Live:
    url: str
    admin: str
    read: str
    sent: Sent


def _wait(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def live(module_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """``watchkeeper serve`` with tokens on, on SQLite, filled and evaluated."""
    directory = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{directory / 'state.db'}"
    env = {"WATCHKEEPER_REQUIRE_TOKENS": "true", "WATCHKEEPER_EVALUATION_INTERVAL_SECONDS": "0.5"}
    srv = module_server(url, env=env)
    store = Store(Settings(database_url=url).sqlalchemy_url)
    try:
        admin = create_token(store, "browser-admin", ["admin"])
        read = create_token(store, "browser-read", ["read"])
    finally:
        store.close()
    api = httpx.Client(base_url=srv.url, headers={"authorization": f"Bearer {admin}"}, timeout=60)
    with api:
        sent = fill(api)
        last = max(sent.per_window())

        def evaluated() -> bool:
            status = api.get(f"/v1/models/{MODEL}").json()
            newest = status.get("latest_window") or {}
            return status["events_pending"] == 0 and newest.get("window_start", 0) >= last

        _wait(evaluated, "the last window to be evaluated")
        if alerts_view.available():
            alerts = lambda: api.get("/v1/alerts", params={"state": "firing"}).json()["alerts"]  # noqa: E731
            _wait(lambda: bool(alerts()), "a firing alert")
    yield Live(srv.url, admin, read, sent)


class Visit:
    """One signed-in browser tab that records console errors, page errors and dialogs."""

    def __init__(self, browser: Any, live: Live, token: str) -> None:
        self.live = live
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.goto(live.url + "/")
        assert "/ui/login" in self.page.url
        self.page.fill("#token", token)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(live.url + "/")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def go(self, path: str) -> None:
        self.page.goto(self.live.url + path)
        self.ready()

    def ready(self) -> None:
        self.page.wait_for_selector("body[data-plots]", state="attached")

    def points(self) -> dict[str, int]:
        """Chart id → data points plotly holds for it (``gd.data``)."""
        counts: dict[str, int] = self.page.evaluate(
            """() => Object.fromEntries(Array.from(document.querySelectorAll('.plot[data-figure]'))
                .map(el => [el.dataset.figure,
                            (el.data || []).reduce((n, t) => n + (t.y ? t.y.length : 0), 0)
                            * (el._fullLayout ? 1 : 0)]))"""
        )
        return counts

    def trace(self, figure: str, index: int = 0) -> dict[str, list[Any]]:
        data: dict[str, list[Any]] = self.page.evaluate(
            """([id, i]) => { const gd = document.querySelector(`.plot[data-figure="${id}"]`);
                 return {x: Array.from(gd.data[i].x), y: Array.from(gd.data[i].y)}; }""",
            [figure, index],
        )
        return data

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser: Any, live: Live) -> Iterator[Callable[[str], Visit]]:
    opened: list[Visit] = []

    def open_(token: str) -> Visit:
        opened.append(Visit(browser, live, token))
        return opened[-1]

    yield open_
    for v in opened:
        v.close()


def test_every_page_loads_without_errors_and_charts_have_points(
    visit: Callable[[str], Visit], live: Live
) -> None:
    v = visit(live.read)
    model = f"/ui/models/{MODEL}"
    pages = {
        "overview": "/",
        "model": f"{model}?range=7d",
        **{f"feature-{f}": f"{model}/features/{f}?range=7d" for f in FEATURES},
        "versions": f"{model}/versions",
        "quarantine": f"{model}/quarantine",
        "alerts": "/ui/alerts",
        "hostile-model": f"/ui/models/{HOSTILE_MODEL}",
        "hostile-feature": f"/ui/models/{HOSTILE_MODEL}/features/{quote(XSS_FEATURE, safe='')}",
    }
    for name, path in pages.items():
        v.go(path)
        points = v.points()
        if name == "model":
            assert set(points) == {
                "fig-volume",
                "fig-latency",
                "fig-errors",
                *(f"fig-performance-{m}" for m in ("accuracy", "f1", "precision", "recall")),
                "fig-performance-roc_auc",
                "fig-drift",
                "fig-joint-drift",  # multivariate_pca
                "fig-prediction-drift-0",  # churn_score
                "fig-prediction-drift-1",  # churn_predicted
            }
        if name.startswith("feature"):
            assert {"fig-distribution", "fig-feature-drift", "fig-feature-missing"} <= set(points)
        assert all(n > 0 for n in points.values()), (name, points)
        v.shot(name)
    assert v.errors == [] and v.dialogs == []


def test_model_page_screenshot(visit: Callable[[str], Visit], live: Live) -> None:
    v = visit(live.read)
    # the windows before the last one: the hostile values of the last hour stay off the README
    windows = sorted(live.sent.per_window())
    v.go(f"/ui/models/{MODEL}?start={windows[0]}&end={windows[-1]}")
    assert v.page.locator("#features-table").inner_text().count("<") == 0
    v.page.set_viewport_size({"width": 1400, "height": 1500})
    v.ready()
    path = v.shot("model-page")
    assert path.stat().st_size > 50_000
    if os.environ.get("WATCHKEEPER_UPDATE_SCREENSHOTS") == "1":
        target = ROOT / "docs" / "images" / "model-page.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    assert v.errors == []


def test_model_page_draws_intervals_the_baseline_and_prediction_drift(
    visit: Callable[[str], Visit], live: Live
) -> None:
    """Each performance chart shades the windows' confidence intervals and draws the training
    baseline as a line, with the figures the API answers; the prediction's own drift has its
    charts and card."""
    v = visit(live.read)
    v.go(f"/ui/models/{MODEL}?range=7d")
    headers = {"authorization": f"Bearer {live.read}"}
    with httpx.Client(base_url=live.url, headers=headers, timeout=30) as api:

        def answer(metric: str, feature: str = "") -> dict[str, Any]:
            params = {"metric": metric, "feature": feature, "version": "v1"}
            r = api.get(f"/v1/models/{MODEL}/metrics", params=params)
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        for metric in ("accuracy", "roc_auc"):
            body = answer(metric)
            traces = v.page.evaluate(
                """id => document.querySelector(`.plot[data-figure="${id}"]`).data.map(
                       t => ({name: t.name, fill: t.fill || null, y: Array.from(t.y)}))""",
                f"fig-performance-{metric}",
            )
            by_name = {t["name"]: t for t in traces}
            points = [p for p in body["points"] if p["value"] is not None]
            assert len(points) >= 3, metric
            # a window without labels is a gap in the chart and has no point
            assert [y for y in by_name[metric]["y"] if y is not None] == [
                p["value"] for p in points
            ]
            band = by_name["95% interval"]
            highs = [p["detail"]["high"] for p in points]
            lows = [p["detail"]["low"] for p in points]
            assert band["fill"] == "toself" and band["y"] == highs + lows[::-1], metric
            assert all(lo < hi for lo, hi in zip(lows, highs, strict=True)), metric
            [base] = body["baseline"]
            assert by_name["training baseline"]["y"] == [base["value"]] * 2, metric
            # plotly drew the band's fill and the baseline's dotted line
            chart = f"#chart-performance-{metric}"
            assert v.page.locator(f"{chart} .scatterlayer .js-fill").count() >= 1
            assert (
                v.page.locator(f"{chart} .scatterlayer .js-line[style*='dasharray']").count() >= 1
            )

        card = v.page.locator("#prediction-drift-card").text_content() or ""
        assert "Prediction drift" in card and "churn_predicted" in card and "churn_score" in card
        for i, output in enumerate(("churn_score", "churn_predicted")):  # in schema order
            drift = [p["value"] for p in answer("prediction_drift", output)["points"]]
            shown = [y for y in v.trace(f"fig-prediction-drift-{i}")["y"] if y is not None]
            assert shown == drift and len(drift) >= 3, output
            title = v.page.locator(f"#chart-prediction-drift-{i} h3").inner_text()
            assert title == f"Prediction drift: {output}"
    v.page.set_viewport_size({"width": 1400, "height": 2400})
    v.ready()
    v.shot("model-page-performance")
    assert v.errors == []


def test_model_page_draws_the_estimate_next_to_the_realized_value(
    visit: Callable[[str], Visit], live: Live
) -> None:
    """The accuracy chart holds the estimate before labels (CBPE, ``estimated_accuracy``) with
    its own band, next to the realized accuracy: the figures the API answers."""
    v = visit(live.read)
    v.go(f"/ui/models/{MODEL}?range=7d")
    headers = {"authorization": f"Bearer {live.read}"}
    with httpx.Client(base_url=live.url, headers=headers, timeout=30) as api:
        params = {"metric": "estimated_accuracy", "version": "v1"}
        r = api.get(f"/v1/models/{MODEL}/metrics", params=params)
    assert r.status_code == 200, r.text
    points = [p for p in r.json()["points"] if p["value"] is not None]
    assert len(points) >= 3
    traces = v.page.evaluate(
        """id => document.querySelector(`.plot[data-figure="${id}"]`).data.map(
               t => ({name: t.name, fill: t.fill || null, y: Array.from(t.y)}))""",
        "fig-performance-accuracy",
    )
    by_name = {t["name"]: t for t in traces}
    shown = [y for y in by_name["estimated accuracy"]["y"] if y is not None]
    assert shown == [p["value"] for p in points]
    band = by_name["estimate's 95% interval"]
    highs = [p["detail"]["high"] for p in points]
    lows = [p["detail"]["low"] for p in points]
    assert band["fill"] == "toself" and band["y"] == highs + lows[::-1]
    assert all(lo < v_ < hi for lo, v_, hi in zip(lows, shown, highs, strict=True))
    assert [y for y in by_name["accuracy"]["y"] if y is not None], "the realized accuracy"
    chart = "#chart-performance-accuracy .scatterlayer .js-fill"
    assert v.page.locator(chart).count() >= 2  # plotly filled both bands
    assert v.errors == []


def test_model_page_draws_the_joint_drift_with_its_threshold(
    visit: Callable[[str], Visit], live: Live
) -> None:
    """The multivariate_pca chart holds the API's values, its calibrated threshold as the
    dashed line, the no-drift band from the lower to the upper threshold shaded, and a marker
    on each drifted window."""
    v = visit(live.read)
    v.go(f"/ui/models/{MODEL}?range=7d")
    headers = {"authorization": f"Bearer {live.read}"}
    with httpx.Client(base_url=live.url, headers=headers, timeout=30) as api:
        params = {"metric": "multivariate_pca", "version": "v1"}
        r = api.get(f"/v1/models/{MODEL}/metrics", params=params)
    assert r.status_code == 200, r.text
    points = r.json()["points"]
    assert len(points) >= 3
    traces = v.page.evaluate(
        """id => document.querySelector(`.plot[data-figure="${id}"]`).data.map(
               t => ({name: t.name, y: Array.from(t.y)}))""",
        "fig-joint-drift",
    )
    by_name = {t["name"]: t["y"] for t in traces}
    assert by_name["PCA reconstruction error"] == [p["value"] for p in points]
    assert by_name["threshold"] == [p["detail"]["threshold"] for p in points]
    # the two-sided decision's no-drift band: the upper ends left to right, the lower back
    upper, lower = (
        [p["detail"]["threshold"] for p in points],
        [p["detail"]["lower_threshold"] for p in points],
    )
    assert by_name["no-drift band"] == upper + lower[::-1]
    assert all(lo < hi for lo, hi in zip(lower, upper, strict=True))
    drifted = [p["value"] for p in points if p["detail"]["drifted"]]
    assert by_name.get("drifted", []) == drifted
    title = v.page.locator("#chart-joint-drift h3").inner_text()
    assert title == "Joint drift: how the features move together"
    chart = "#chart-joint-drift .scatterlayer .js-line[style*='dasharray']"
    assert v.page.locator(chart).count() >= 1  # plotly drew the dashed threshold
    assert v.errors == []


def test_time_range_and_segment_filter_change_the_charts(
    visit: Callable[[str], Visit], live: Live
) -> None:
    v = visit(live.read)
    v.go(f"/ui/models/{MODEL}?range=7d")
    week = v.trace("fig-volume")
    expected = live.sent.per_window()
    assert sum(week["y"]) == sum(expected.values()) and len(week["x"]) == len(expected)

    with v.page.expect_navigation():
        v.page.select_option("#range", "6h")
    v.ready()
    assert "range=6h" in v.page.url
    six = v.trace("fig-volume")
    assert 0 < len(six["x"]) < len(week["x"])

    with v.page.expect_navigation():
        v.page.select_option("#segment", "country=DE")
    v.ready()
    assert "segment=country%3DDE" in v.page.url and "range=6h" in v.page.url
    germany = v.trace("fig-volume")
    by_window = live.sent.per_window("country=DE")
    assert sum(germany["y"]) < sum(six["y"])
    assert sum(germany["y"]) == sum(n for w, n in by_window.items() if _iso(w) in germany["x"])
    assert v.errors == []


def _iso(start: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start))


@pytest.mark.skipif(not alerts_view.available(), reason="this build has no alert engine")
def test_admin_silences_an_alert_from_the_page(visit: Callable[[str], Visit], live: Live) -> None:
    reader = visit(live.read)
    reader.go("/ui/alerts")
    assert reader.page.locator("#open-alerts tr[data-alert]").count() >= 1
    assert reader.page.locator("form.silence").count() == 0  # read scope sees, does not act

    v = visit(live.admin)
    v.go("/ui/alerts")
    row = v.page.locator("#open-alerts tr[data-alert]").first
    alert_id = row.get_attribute("data-alert")
    row.locator("select[name=duration]").select_option("4h")
    row.locator("input[name=comment]").fill("on it <b>now</b>")
    with v.page.expect_navigation():
        row.locator("button[type=submit]").click()
    v.ready()
    assert v.page.locator("#flash").inner_text() == "Silenced."
    silenced = v.page.locator(f'#open-alerts tr[data-alert="{alert_id}"] .badge.silenced')
    assert silenced.count() == 1
    assert "on it <b>now</b>" in v.page.locator("#silences").inner_text()
    v.shot("alerts-silenced")
    assert v.errors == [] and v.dialogs == []


def test_hostile_values_are_shown_as_text_and_run_nothing(
    visit: Callable[[str], Visit], live: Live
) -> None:
    v = visit(live.read)
    last = max(live.sent.per_window())
    pages = [
        f"/ui/models/{MODEL}?range=7d",
        f"/ui/models/{MODEL}/features/plan?range=7d&window={last}",
        f"/ui/models/{MODEL}/features/country?range=7d&window={last}",
        f"/ui/models/{MODEL}/quarantine",
        f"/ui/models/{HOSTILE_MODEL}/features/{quote(XSS_FEATURE, safe='')}",
    ]
    for path in pages:
        v.go(path)
        assert v.page.evaluate("window.__xss === undefined")
        assert (
            v.page.evaluate("document.querySelectorAll('img[src=\"x\"], svg[onload]').length") == 0
        )
    v.go(pages[1])
    assert XSS_CATEGORY in v.page.locator("#top-unseen").inner_text()
    # plotly draws the category as a literal axis label
    ticks = v.page.locator("#chart-distribution .xtick text").all_text_contents()
    assert XSS_CATEGORY in ticks, ticks
    v.go(pages[0])
    options = v.page.locator("#segment option").all_inner_texts()
    assert any(XSS_SEGMENT in o for o in options)
    v.shot("hostile-values")
    assert v.dialogs == [] and v.errors == []
