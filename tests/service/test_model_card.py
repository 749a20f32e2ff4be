"""Failing slices and the model card through ``watchkeeper serve`` (SQLite and PostgreSQL): a
version registered with its card metadata, a window with a planted failing slice and its
labels; ``GET /v1/models/{model}/slices`` answers the slice first, ``GET .../card`` the card
(JSON, self-contained HTML, Markdown) with the metadata, the window's realized accuracy, its
slices, attributions "not computed" and the lineage; ``watchkeeper model-card`` writes the
HTML and Markdown files; unknown names answer 404 naming them, and the CLI one line and exit
code 2; the dashboard's card page renders in Chromium without a console error, and the model
page shows the worst slice."""

from __future__ import annotations

import io
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.dashboard.browser import TIMEOUT_MS, launch
from tests.service.fixtures import Server, ServerFactory, _command
from tests.service.test_window_slices import draw

N = 3000
META = {
    "description": "Churn classifier for retail customers",
    "owner": "risk-ml@example.org",
    "intended_use": "Rank customers for retention calls; not for credit decisions.",
}
PLANTED = "country=DE, income ≥ 80k"


@pytest.fixture(scope="module")
def served(
    module_databases: Callable[[], str], module_server: ServerFactory
) -> Iterator[tuple[Server, int, pa.Table]]:
    """A server with model ``m`` v1 (its card metadata given), a window of ``N`` events with
    a planted failing slice, their labels, and the window's slices computed."""
    url = module_databases()
    server = module_server(url, env={"WATCHKEEPER_EVALUATION_INTERVAL_SECONDS": "0.3"})
    buf = io.BytesIO()
    pq.write_table(pa.table(draw(np.random.default_rng(0), 5000, planted=False)), buf)
    rows = pa.table(draw(np.random.default_rng(1), N, planted=True))
    start = (int(time.time()) // 3600 - 3) * 3600
    with server.client() as api:
        r = api.put(
            "/v1/models/m/versions/v1",
            params={"target": "y", "prediction": "p", **META},
            content=buf.getvalue(),
            headers={"content-type": "application/vnd.apache.parquet"},
        )
        assert r.status_code == 201, r.text
        events = [
            {
                "prediction_id": f"p{i}",
                "timestamp": start + i,
                "features": {
                    "country": rows["country"][i].as_py(),
                    "income": rows["income"][i].as_py(),
                },
                "prediction": rows["p"][i].as_py(),
            }
            for i in range(N)
        ]
        r = api.post("/v1/models/m/predictions", json={"events": events})
        assert r.status_code == 200 and r.json()["accepted"] == N, r.text
        actuals = [{"prediction_id": f"p{i}", "label": rows["y"][i].as_py()} for i in range(N)]
        assert api.post("/v1/models/m/actuals", json={"actuals": actuals}).status_code == 200
        deadline = time.time() + 60
        while True:
            r = api.get("/v1/models/m/slices")
            if r.status_code == 200 and r.json()["labels"] == N:
                break
            assert time.time() < deadline, f"no slices for the labelled window: {r.text}"
            time.sleep(0.3)
    return server, start, rows


def test_the_slices_route_answers_the_planted_slice_first(
    served: tuple[Server, int, pa.Table],
) -> None:
    server, start, rows = served
    with server.client() as api:
        body = api.get("/v1/models/m/slices").json()
        assert body["window_start"] == start and body["version"] == "v1"
        first = body["failing_slices"]["slices"][0]
        assert first["description"] == PLANTED
        country, income = rows["country"].to_numpy(False), rows["income"].to_numpy()
        assert first["n"] == int(((country == "DE") & (income >= 80_000)).sum())
        wrong = rows["y"].to_numpy(False) != rows["p"].to_numpy(False)
        inside = (country == "DE") & (income >= 80_000)
        assert first["slice"]["value"] == pytest.approx(1 - wrong[inside].mean(), rel=1e-12)
        assert first["rest"]["value"] == pytest.approx(1 - wrong[~inside].mean(), rel=1e-12)
        assert body["sentence"].startswith(f"accuracy is worst in {PLANTED}: ")
        assert [w["window_start"] for w in body["windows"]] == [start]
        same = api.get("/v1/models/m/slices", params={"window": start, "version": "v1"})
        assert same.status_code == 200 and same.json()["failing_slices"] == body["failing_slices"]
        for params, named in (
            ({"window": start + 1}, "no labelled window"),
            ({"version": "v9"}, "'v9'"),
        ):
            r = api.get("/v1/models/m/slices", params=params)
            assert r.status_code == 404 and named in r.json()["error"]["message"], r.text
        r = api.get("/v1/models/nope/slices")
        assert r.status_code == 404 and "'nope'" in r.json()["error"]["message"]


def test_the_card_has_every_section(served: tuple[Server, int, pa.Table]) -> None:
    server, start, rows = served
    with server.client() as api:
        card = api.get("/v1/models/m/card").json()
        assert card["model"] == "m" and card["version"] == "v1" and card["state"] == "champion"
        assert card["metadata"] == META
        assert card["reference"]["rows"] == 5000
        names = {c["name"]: c for c in card["reference"]["columns"]}
        assert names["country"]["role"] == "feature" and names["y"]["role"] == "target"
        reference = draw(np.random.default_rng(0), 5000, planted=False)
        assert names["income"]["mean"] == pytest.approx(reference["income"].mean(), rel=1e-9)
        assert names["income"]["std"] == pytest.approx(reference["income"].std(ddof=1), rel=1e-6)
        de = float(np.mean(reference["country"] == "DE"))
        assert {t["value"]: t["share"] for t in names["country"]["top"]}["DE"] == pytest.approx(de)
        [window] = card["performance"]["windows"]
        accuracy = float(np.mean(rows["y"].to_numpy(False) == rows["p"].to_numpy(False)))
        assert window["window_start"] == start and window["labels"] == N
        assert window["accuracy"]["value"] == pytest.approx(accuracy, rel=1e-12)
        assert card["performance"]["reference"]["accuracy"]["value"] is not None
        assert card["failing_slices"]["latest"]["result"]["slices"][0]["description"] == PLANTED
        assert card["attributions"] is None
        assert [v["version"] for v in card["lineage"]["versions"]] == ["v1"]
        assert card["lineage"]["events"][0]["kind"] == "version_registered"
        [audit] = api.get("/v1/audit", params={"kind": "version_registered"}).json()["entries"]
        assert audit["after"]["card"] == META  # the metadata, recorded with the version

        html = api.get("/v1/models/m/card", params={"format": "html"})
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        text = html.text
        assert text.startswith("<!DOCTYPE html>") and "<script" not in text
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "fetches something"
        for expected in (*META.values(), PLANTED, "not computed", "Training reference"):
            assert expected in text, expected
        md = api.get("/v1/models/m/card", params={"format": "markdown", "version": "v1"})
        assert md.status_code == 200 and md.text.startswith("# Model card: m v1")
        assert f"| {PLANTED} |" in md.text and META["owner"] in md.text

        r = api.get("/v1/models/nope/card")
        assert r.status_code == 404 and "'nope'" in r.json()["error"]["message"]
        r = api.get("/v1/models/m/card", params={"version": "v9"})
        assert r.status_code == 404 and "'v9'" in r.json()["error"]["message"]
        r = api.get("/v1/models/m/card", params={"format": "pdf"})
        assert r.status_code == 422


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_command(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_cli_writes_html_and_markdown(
    served: tuple[Server, int, pa.Table], tmp_path: Path
) -> None:
    server = served[0]
    html, md = tmp_path / "card.html", tmp_path / "card.md"
    for path in (html, md):
        done = _cli("model-card", "m", "v1", "-o", str(path), "--url", server.url)
        assert done.returncode == 0, done.stderr
        assert f"to {path}" in done.stdout
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and PLANTED in page and META["owner"] in page
    assert "<script" not in page and "@media print" in page
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# Model card: m v1") and "## Failing slices" in text
    out = _cli("model-card", "m", "--url", server.url)  # the champion, Markdown on stdout
    assert out.returncode == 0 and out.stdout == text

    reference = tmp_path / "ref.parquet"
    pq.write_table(pa.table(draw(np.random.default_rng(2), 500, planted=False)), reference)
    flags = ("--description", META["description"], "--owner", META["owner"])
    done = _cli("register", "m2", str(reference), "--target", "y", "--prediction", "p", *flags,
                "--intended-use", META["intended_use"], "--url", server.url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    with server.client() as api:
        assert api.get("/v1/models/m2/card").json()["metadata"] == META
    second = _cli("model-card", "m2", "--url", server.url)
    assert second.returncode == 0 and f"Owner: {META['owner']}" in second.stdout
    assert "No labelled window yet: failing slices not sought." in second.stdout

    for args, named in (
        (("model-card", "nope", "-o", str(tmp_path / "x.html")), "'nope'"),
        (("model-card", "m", "v9", "-o", str(tmp_path / "x.md")), "'v9'"),
        (("model-card", "m", "-o", str(tmp_path / "x.pdf")), "x.pdf"),
    ):
        bad = _cli(*args, "--url", server.url)
        assert bad.returncode == 2, bad
        assert len(bad.stderr.strip().splitlines()) == 1 and named in bad.stderr, bad.stderr
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "x.pdf").exists()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch()


def test_the_card_and_model_pages_render_in_a_browser(
    served: tuple[Server, int, pa.Table], chromium: Any
) -> None:
    server = served[0]
    page = chromium.new_page()
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    try:
        r = page.goto(f"{server.url}/ui/models/m/card", timeout=TIMEOUT_MS)
        assert r is not None and r.status == 200
        assert page.locator("h1").inner_text() == "Model card: m v1"
        assert PLANTED in page.locator("#failing-slices").inner_text()
        assert "not computed" in page.locator("#attributions").inner_text()
        page.goto(f"{server.url}/ui/models/m?range=all", timeout=TIMEOUT_MS)
        worst = page.locator("#worst-slice").inner_text()
        assert worst.startswith(f"accuracy is worst in {PLANTED}: "), worst
        assert page.locator("#slices-table tbody tr").first.get_attribute("data-slice") == PLANTED
        page.locator("#card-link").click()
        page.wait_for_url(re.compile(r".*/ui/models/m/card.*"), timeout=TIMEOUT_MS)
        assert page.locator("h1").inner_text() == "Model card: m v1"
        assert problems == []
        bad = page.goto(f"{server.url}/ui/models/m/card?version=v9", timeout=TIMEOUT_MS)
        assert bad is not None and bad.status == 404
        assert "'v9'" in page.locator("main").inner_text()
    finally:
        page.close()


def test_card_metadata_too_long_is_refused_naming_it(
    database_url: str, open_store: Callable[[str], Any], tmp_path: Path
) -> None:
    from watchkeeper.errors import InputError
    from watchkeeper.ingest.service import IngestService
    from watchkeeper.settings import load_settings

    service = IngestService(open_store(database_url), load_settings(data_dir=tmp_path / "d"))
    reference = pa.table(draw(np.random.default_rng(0), 200, planted=False))
    with pytest.raises(InputError, match="owner must be text of at most 10,000 characters"):
        service.register("m", reference, target="y", prediction="p", owner="x" * 10_001)
    assert service.store.models() == []
    service.register("m", reference, target="y", prediction="p", owner="  ", description="d")
    assert service.store.version("m", "v1")["card"] == {"description": "d"}
