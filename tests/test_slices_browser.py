"""The HTML report's failing-slices section in a real Chromium: it renders offline with no
console error, the headline names the top slice and the table holds every reported slice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import watchkeeper
from tests.dashboard.browser import TIMEOUT_MS, launch
from tests.test_slices import _classified


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


def test_the_failing_slices_section_renders(browser: Any, tmp_path: Path) -> None:
    ref = _classified(20, 6000, lambda d: 0.1)
    cur = _classified(21, 6000, lambda d: np.where(d["country"] == "IT", 0.3, 0.1))
    report = watchkeeper.compare(ref, cur, target="y", prediction="p")
    assert report.failing_slices is not None and report.failing_slices.slices
    page_file = report.save_html(tmp_path / "report.html")
    context = browser.new_context(offline=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_file.as_uri(), timeout=TIMEOUT_MS)
    page.wait_for_selector("#slices-table", timeout=TIMEOUT_MS)
    headline = page.locator("#slices-headline").inner_text()
    assert headline.startswith("Accuracy fell mostly in country=IT:")
    rows = page.locator("#slices-table tbody tr")
    assert rows.count() == len(report.failing_slices.slices)
    assert rows.first.locator("td").first.inner_text() == "country=IT"
    assert page.locator('nav a[href="#slices"]').is_visible()
    assert not errors, errors
    context.close()
