"""Debian's Chromium driven by Playwright, as the browser tests launch it: the path
(``/usr/bin/chromium``, or ``WATCHKEEPER_CHROMIUM``), the flags, and the rule that a missing
browser or Playwright skips the tests, except under CI (env ``CI`` set), where they fail."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("WATCHKEEPER_CHROMIUM", "/usr/bin/chromium")
ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
TIMEOUT_MS = 30_000


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: the browser tests must run)", pytrace=False)
    pytest.skip(message)


def launch(extra_args: Sequence[str] = ()) -> Iterator[Any]:
    """Yield a launched Chromium (for a module-scoped fixture); closed afterwards."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed: {exc}")
    if not Path(CHROMIUM).is_file():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, *extra_args])
        yield chromium
        chromium.close()
