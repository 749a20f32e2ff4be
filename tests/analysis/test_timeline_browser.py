"""The saved Timeline page in a real Chromium: it renders offline with no console error, and
every figure is drawn with its data points."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.analysis.test_reference import _frame
from tests.dashboard.browser import TIMEOUT_MS, launch
from watchkeeper import Reference


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


def test_the_timeline_page_renders_offline(browser: Any, tmp_path: Path) -> None:
    ref = Reference.fit(_frame(6000, 41), target="y", prediction="p", timestamp="ts")
    shifted = _frame(1500, 43, 0.6)
    shifted["ts"] = shifted["ts"] + pd.Timedelta(days=31)
    timeline = ref.analyze(pd.concat([_frame(1500, 42), shifted]), chunk_period="W")
    page_file = timeline.save_html(tmp_path / "timeline.html")
    context = browser.new_context(offline=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: r.url.startswith("file:") or requests.append(r.url))
    page.goto(page_file.as_uri(), timeout=TIMEOUT_MS)
    page.wait_for_selector(".plot .main-svg", timeout=TIMEOUT_MS)
    plots = page.locator(".plot[data-figure]")
    # drift share, missing share, accuracy, multivariate_pca and failing_slices
    assert plots.count() == len(timeline.reports[0].drift) + 5
    drawn = page.evaluate(
        "Array.from(document.querySelectorAll('.plot[data-figure]'))"
        ".map(el => (el.data || []).reduce((n, t) => n + (t.y ? t.y.length : 0), 0))"
    )
    assert all(n >= len(timeline) for n in drawn), drawn
    assert page.locator("tr.alert").count() == len(timeline.alerts())
    assert not errors, errors
    assert not requests, requests  # self-contained: nothing fetched
    context.close()
