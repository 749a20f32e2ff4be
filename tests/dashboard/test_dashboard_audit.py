"""The audit trail's page in Debian's Chromium (Playwright) against ``watchkeeper serve`` with
tokens on: an admin finds it in the navigation, sees every change with its actor, narrows the
table by model and by kind, and exports what the filters select; a read-only token is refused
and is not offered the link. Marked ``slow`` like the other browser tests."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.dashboard.browser import TIMEOUT_MS, launch
from watchkeeper.settings import Settings
from watchkeeper.store.audit import acting_as
from watchkeeper.store.state import Store
from watchkeeper.store.tokens import create_token

pytestmark = pytest.mark.slow


@dataclass
class Live:
    url: str
    admin: str
    read: str


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


def _reference() -> bytes:
    table = pa.table({"age": [float(i % 50) for i in range(100)], "pred": ["y", "n"] * 50})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def live(module_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Tokens on; the token ``auditor`` registers two models and silences one of them."""
    url = f"sqlite:///{tmp_path_factory.mktemp('audit') / 'state.db'}"
    srv = module_server(url, env={"WATCHKEEPER_REQUIRE_TOKENS": "true"})
    store = Store(Settings(database_url=url).sqlalchemy_url)
    try:
        with acting_as("setup"):
            admin = create_token(store, "auditor", ["admin"])
            read = create_token(store, "watcher", ["read"])
    finally:
        store.close()
    headers = {"authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=srv.url, headers=headers, timeout=60) as api:
        for model in ("fraud", "churn"):
            r = api.put(
                f"/v1/models/{model}/versions/v1",
                params={"prediction": "pred"},
                content=_reference(),
                headers={"content-type": "application/vnd.apache.parquet"},
            )
            assert r.status_code == 201, r.text
        r = api.post("/v1/silences", json={"matchers": {"model": "churn"}, "duration": "1h"})
        assert r.status_code == 201, r.text
    yield Live(srv.url, admin, read)


def _signed_in(browser: Any, live: Live, token: str) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(live.url + "/")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(live.url + "/")
    return context, page, errors


def _rows(page: Any) -> list[tuple[str, str, str]]:
    """(kind, actor, model) of each row of the table, top to bottom."""
    cells: list[tuple[str, str, str]] = page.evaluate(
        """() => Array.from(document.querySelectorAll('#audit tr[data-id]'))
            .map(tr => [tr.dataset.kind, tr.dataset.actor, tr.dataset.model])"""
    )
    return [tuple(c) for c in cells]  # type: ignore[misc]


def test_an_admin_reads_filters_and_exports_the_audit_trail(browser: Any, live: Live) -> None:
    context, page, errors = _signed_in(browser, live, live.admin)
    try:
        with page.expect_navigation():
            page.click("nav.main a[href='/ui/audit']")
        assert page.locator("h1").inner_text() == "Audit trail"
        assert _rows(page) == [
            ("silence_created", "auditor", "churn"),
            ("version_registered", "auditor", "churn"),
            ("model_registered", "auditor", "churn"),
            ("version_registered", "auditor", "fraud"),
            ("model_registered", "auditor", "fraud"),
            ("token_created", "setup", ""),
            ("token_created", "setup", ""),
        ]
        assert '"duration"' not in page.locator("#audit").inner_text()
        assert '"matchers"' in page.locator("#audit").inner_text()  # the silence's after

        page.select_option("#audit-filters select[name=model]", "fraud")
        with page.expect_navigation():
            page.click("#audit-filters button[type=submit]")
        assert _rows(page) == [
            ("version_registered", "auditor", "fraud"),
            ("model_registered", "auditor", "fraud"),
        ]
        page.select_option("#audit-filters select[name=model]", "")
        page.select_option("#audit-filters select[name=kind]", "token_created")
        with page.expect_navigation():
            page.click("#audit-filters button[type=submit]")
        assert [r[0] for r in _rows(page)] == ["token_created", "token_created"]
        assert "kind=token_created" in page.url

        href = page.get_attribute("#export-jsonl", "href")
        answer = page.request.get(live.url + href)  # the page's session cookie goes along
        assert answer.ok and answer.headers["content-type"] == "application/x-ndjson"
        exported = [json.loads(line) for line in answer.text().splitlines()]
        assert [(e["kind"], e["after"]["name"]) for e in exported] == [
            ("token_created", "auditor"),
            ("token_created", "watcher"),
        ]
        page.fill("#audit-filters input[name=since]", "2000-01-01T00:00")
        page.fill("#audit-filters input[name=actor]", "nobody")
        with page.expect_navigation():
            page.click("#audit-filters button[type=submit]")
        assert _rows(page) == [] and "No changes match." in page.inner_text("#audit")
        assert errors == []
    finally:
        context.close()


def test_a_read_token_is_refused_the_page(browser: Any, live: Live) -> None:
    context, page, _ = _signed_in(browser, live, live.read)
    try:
        assert page.locator("nav.main a[href='/ui/audit']").count() == 0
        response = page.goto(live.url + "/ui/audit")
        assert response.status == 403
        assert "the audit trail needs admin" in page.inner_text("main")
        assert page.request.get(live.url + "/ui/audit/export").status == 403
    finally:
        context.close()
