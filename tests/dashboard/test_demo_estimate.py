"""The demo's estimated accuracy: the service on the demo's own data — v1 registered with its
reference (target, prediction, score), the demo's traffic with its change (a covariate shift
and concept drift) and its labels a window and a half late — estimates the changed window's
accuracy when it closes, below the reference's with its interval, while no label of that
window has come; the realized accuracy follows once they do. The dashboard's model page (Debian's
Chromium, driven by Playwright) draws the estimated accuracy. Once its labels have come, the
changed window's failing slice is the concept change's (the active customers, who now churn):
the API, the model page and the model card (rendered without a console error) show it.

Marked ``slow``: a real server and about half a minute of live traffic.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dashboard.browser import TIMEOUT_MS, launch
from watchkeeper import demo

pytestmark = pytest.mark.slow
WINDOW = 4


@dataclass
class Run:
    url: str
    change_at: float
    window_start: int = 0  # the first window wholly after the change
    estimated: dict[str, Any] = field(default_factory=dict)  # its point, when first seen
    realized_then: list[dict[str, Any]] = field(default_factory=list)  # accuracy then
    realized: dict[str, Any] = field(default_factory=dict)  # its accuracy, later
    slices: dict[str, Any] = field(default_factory=dict)  # its failing slices, once found


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _points(api: httpx.Client, metric: str, start: int) -> list[dict[str, Any]]:
    r = api.get(f"/v1/models/{demo.MODEL}/metrics", params={"metric": metric, "version": "v1"})
    assert r.status_code == 200, r.text
    return [p for p in r.json()["points"] if p["window_start"] == start]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The demo's model, registered as the demo registers it, and the demo's traffic, until
    the changed window has its estimate and then its realized accuracy."""
    from watchkeeper.server.app import create_app
    from watchkeeper.settings import load_settings

    plan = demo.DemoPlan(window_seconds=WINDOW, windows_before=1, reference_rows=5000)
    host, port = "127.0.0.1", _port()
    data = tmp_path_factory.mktemp("demo")
    settings = load_settings(
        data_dir=data, host=host, port=port, window_seconds=WINDOW,
        evaluation_interval_seconds=0.25,
    )  # fmt: skip
    server, thread = demo.start_server(create_app(settings), host, port)
    url = f"http://{host}:{port}"
    traffic = None
    try:
        reference, model, _ = demo.champion_v1(plan)
        demo.register(url, plan, reference, model)
        change_at = (time.time() // WINDOW + 1 + plan.windows_before) * WINDOW
        out = Run(url, change_at, window_start=int(change_at))
        traffic = demo.Traffic(host, port, plan, change_at)
        traffic.start()
        deadline = time.time() + 120
        with httpx.Client(base_url=url, timeout=30) as api:
            while not out.estimated:
                assert time.time() < deadline, "no estimated accuracy for the changed window"
                est = [p for p in _points(api, "estimated_accuracy", out.window_start) if p]
                if est and est[0]["value"] is not None:
                    out.realized_then = _points(api, "accuracy", out.window_start)
                    out.estimated = est[0]
                time.sleep(0.1)
            while not out.realized:
                assert time.time() < deadline, "no realized accuracy for the changed window"
                real = _points(api, "accuracy", out.window_start)
                if real and real[0]["value"] is not None and real[0]["detail"]["n"] >= 50:
                    out.realized = real[0]
                time.sleep(0.25)
            while not out.slices:  # the window's labels keep coming: its slices, once found
                assert time.time() < deadline, "no failing slice for the changed window"
                r = api.get(
                    f"/v1/models/{demo.MODEL}/slices",
                    params={"version": "v1", "window": out.window_start},
                )
                if r.status_code == 200 and r.json()["failing_slices"]["slices"]:
                    out.slices = r.json()
                time.sleep(0.25)
        traffic.stop()
        yield out
    finally:
        if traffic is not None:
            traffic.stop()
        server.should_exit = True
        thread.join(timeout=30)


def test_the_changed_window_is_estimated_below_the_reference_before_its_labels(
    run: Run,
) -> None:
    est = run.estimated
    d = est["detail"]
    assert d["estimator"] == "cbpe" and d["level"] == 0.95 and d["n"] > 0
    assert d["low"] < est["value"] < d["high"]
    # below the reference's accuracy by more than the interval's reach
    assert d["high"] < d["reference_value"], d
    # when the estimate was there, no label of its window had come
    assert all(p["value"] is None for p in run.realized_then), run.realized_then
    # then they came: the realized accuracy, lower still (the concept drift the labels show)
    assert run.realized["value"] < d["reference_value"] - 0.1, (run.realized, d)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


def test_the_demo_model_page_draws_the_estimated_accuracy(run: Run, browser: Any) -> None:
    page = browser.new_page()
    try:
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        def estimated() -> list[float]:
            with httpx.Client(base_url=run.url, timeout=30) as api:
                r = api.get(
                    f"/v1/models/{demo.MODEL}/metrics",
                    params={"metric": "estimated_accuracy", "version": "v1"},
                )
            return [p["value"] for p in r.json()["points"] if p["value"] is not None]

        before = estimated()  # the last window may close while the page loads
        page.goto(f"{run.url}/ui/models/{demo.MODEL}?range=6h", timeout=TIMEOUT_MS)
        figure = ".plot[data-figure='fig-performance-accuracy']"
        page.wait_for_function(
            f'() => document.querySelector("{figure}")?.data?.length > 0', timeout=TIMEOUT_MS
        )
        traces = page.evaluate(
            f"""() => document.querySelector("{figure}").data.map(
                   t => ({{name: t.name, y: Array.from(t.y)}}))"""
        )
        by_name = {t["name"]: t for t in traces}
        after = estimated()
        shown = [y for y in by_name["estimated accuracy"]["y"] if y is not None]
        assert shown in (before, after) and run.estimated["value"] in shown
        assert "estimate's 95% interval" in by_name
        assert [y for y in by_name["accuracy"]["y"] if y is not None], "the realized accuracy"
        artifacts = Path(__file__).parents[1] / "artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / "demo-estimated-accuracy.png"), full_page=True)
        assert errors == []
    finally:
        page.close()


def test_the_demo_dashboard_shows_the_failing_slice_of_its_concept_change(
    run: Run, browser: Any
) -> None:
    """The concept change (churn no longer follows activity: active customers now churn) is
    where v1 fails: on the changed window's labelled rows the worst slice is the active
    customers, worse than the rest; the API, the model page and the model card (rendered in
    Chromium without a console error) say so."""
    window = run.window_start
    first = run.slices["failing_slices"]["slices"][0]
    assert "is_active=true" in first["description"].split(", "), first
    assert first["slice"]["value"] < first["rest"]["value"]
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{run.url}/ui/models/{demo.MODEL}?range=6h", timeout=TIMEOUT_MS)
        row = page.locator(f"#slice-windows tr[data-window='{window}']").inner_text()
        assert "accuracy is worst in " in row and "is_active=true" in row, row
        assert page.locator("#worst-slice").count() == 1
        page.goto(f"{run.url}/ui/models/{demo.MODEL}/card", timeout=TIMEOUT_MS)
        assert page.locator("h1").inner_text() == f"Model card: {demo.MODEL} v1"
        assert "is_active=true" in page.locator("#failing-slices").inner_text()
        artifacts = Path(__file__).parents[1] / "artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / "demo-model-card.png"), full_page=True)
        assert errors == []
    finally:
        page.close()
