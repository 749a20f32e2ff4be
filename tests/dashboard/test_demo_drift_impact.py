"""The demo's drift impact: the service on the demo's own model and traffic — v1 registered
and its skops artifact attached as the demo does it, so the service computes the artifact's
attribution shares on the reference sample — ranks the drifted features of a window of the
drift phase by drift × attribution share; the model page's "Drift impact" list (Debian's
Chromium, driven by Playwright) shows them in that order, without console errors.

Marked ``slow``: a real server, the shares of a permutation explainer and live traffic.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.dashboard.browser import TIMEOUT_MS, launch
from watchkeeper import demo

pytest.importorskip("shap", reason="the explain extra: pip install -e '.[dev]'")
pytestmark = pytest.mark.slow
WINDOW = 4


@dataclass
class Run:
    url: str
    impact: list[dict[str, Any]]
    drift: dict[str, dict[str, Any]]  # the window's drift points' detail, by feature
    shares: dict[str, float]
    change_at: float
    window: int  # the drift-phase window whose ranking the fixture read


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    from watchkeeper.server.app import create_app
    from watchkeeper.settings import load_settings

    plan = demo.DemoPlan(window_seconds=WINDOW, windows_before=1, reference_rows=3000)
    host, port = "127.0.0.1", _port()
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("demo"), host=host, port=port, window_seconds=WINDOW,
        evaluation_interval_seconds=0.25,
    )  # fmt: skip
    server, thread = demo.start_server(create_app(settings), host, port)
    url = f"http://{host}:{port}"
    traffic = None
    try:
        reference, model, _ = demo.champion_v1(plan)
        demo.register(url, plan, reference, model)
        change_at = (time.time() // WINDOW + 1 + plan.windows_before) * WINDOW
        traffic = demo.Traffic(host, port, plan, change_at)
        traffic.start()
        deadline = time.time() + 240
        with httpx.Client(base_url=url, timeout=30) as api:
            while True:
                assert time.time() < deadline, "no drift impact in a window of the drift phase"
                r = api.get(
                    f"/v1/models/{demo.MODEL}/metrics",
                    params={"metric": "drifted_share", "version": "v1"},
                )
                assert r.status_code == 200, r.text
                ranked = [
                    p
                    for p in r.json()["points"]
                    if p["window_start"] >= change_at and (p["detail"] or {}).get("drift_impact")
                ]
                if ranked:
                    break
                time.sleep(0.5)
            window = ranked[-1]["window_start"]
            traffic.stop()
            drift = {}
            for name in demo.FEATURES:
                got = api.get(
                    f"/v1/models/{demo.MODEL}/metrics",
                    params={"metric": "drift_statistic", "feature": name, "version": "v1"},
                ).json()["points"]
                drift[name] = next(p["detail"] for p in got if p["window_start"] == window)
        from watchkeeper.store.state import Store

        store = Store(settings.sqlalchemy_url)
        shares = store.reference_attributions(demo.MODEL, "v1")["shares"]
        yield Run(url, ranked[-1]["detail"]["drift_impact"], drift, shares, change_at, window)
    finally:
        if traffic is not None:
            traffic.stop()
        server.should_exit = True
        thread.join(timeout=30)


def test_the_drift_phase_ranks_drifted_features_by_drift_times_share(run: Run) -> None:
    drifted = {f: d["effect_size"] for f, d in run.drift.items() if d["drifted"]}
    assert [r["feature"] for r in run.impact] == sorted(
        drifted, key=lambda f: (-drifted[f] * run.shares[f], -drifted[f])
    )
    for r in run.impact:
        assert r["impact"] == pytest.approx(drifted[r["feature"]] * run.shares[r["feature"]])
    assert abs(sum(run.shares.values()) - 1) < 1e-9


def test_the_demo_story_tells_the_first_changed_windows_drift_impact(run: Run) -> None:
    from watchkeeper.demo_story import drift_impact_after

    found = drift_impact_after(run.url, run.change_at)
    assert found is not None
    start, rows = found
    assert start >= run.change_at and rows[0]["message"].endswith("of the model's attribution")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


def test_the_demo_model_page_lists_the_drift_impact(run: Run, browser: Any) -> None:
    page = browser.new_page()
    try:
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        # the range ends with the window the fixture read: the page's newest window is that one,
        # not a later one the traffic only began (or one still waiting for its evaluation)
        span = f"start={run.window}&end={run.window + WINDOW}"
        page.goto(f"{run.url}/ui/models/{demo.MODEL}?{span}", timeout=TIMEOUT_MS)
        rows = page.locator("#drift-impact-table tbody tr")
        rows.first.wait_for(timeout=TIMEOUT_MS)
        shown = [rows.nth(i).get_attribute("data-feature") for i in range(rows.count())]
        assert shown == [row["feature"] for row in run.impact]
        # the page shows that window's ranking: every row a drifted feature, by impact
        message = rows.first.locator("td").last.inner_text()
        assert message.startswith(f"{shown[0]} drifted and carries")
        assert errors == []
    finally:
        page.close()
