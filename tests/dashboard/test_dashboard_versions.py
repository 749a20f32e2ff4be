"""The versions page against ``watchkeeper serve`` (tokens on), on both backends: a shadow
challenger beside the champion on the same requests — its figures checked against numpy and
scikit-learn on the traffic sent, and against the verdict the server took and the API reports
— a canary, the policy; and the promotion forms: a viewer sees none and a forged post is
refused, a post without the CSRF token too, and an admin's promotion, rollback and retirement
are each recorded once in the model's history."""

from __future__ import annotations

import html
import io
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import f1_score

from tests.dashboard.browser import TIMEOUT_MS, launch
from tests.service.fixtures import reference_table
from watchkeeper.settings import Settings
from watchkeeper.store import promotion as states
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store
from watchkeeper.store.tokens import create_token

ARTIFACTS = Path(__file__).parents[2] / "tests" / "artifacts"
MODEL, SWAP, CLICK = "churn", "swap", "click"  # SWAP: the forms change it; CLICK: the browser
N, LABELLED, FAILED = 400, 330, 3  # requests, of which labelled, of which the challenger failed


@dataclass
class Live:
    url: str
    admin: str
    read: str
    y: np.ndarray[Any, Any]  # the labels of the first LABELLED requests
    a: np.ndarray[Any, Any]  # the champion's predictions
    b: np.ndarray[Any, Any]  # the challenger's (NaN where it failed)
    latency: np.ndarray[Any, Any]  # the challenger's
    champion_latency: np.ndarray[Any, Any]


def _register(api: httpx.Client, model: str) -> None:
    buf = io.BytesIO()
    pq.write_table(reference_table(), buf)
    for v in ("v1", "v2", "v3"):
        r = api.put(
            f"/v1/models/{model}/versions/{v}",
            params={"prediction": "pred", "segments": "region", "champion": v == "v1"},
            content=buf.getvalue(),
            headers={"content-type": "application/vnd.apache.parquet"},
        )
        assert r.status_code == 201, r.text
    assert api.post(f"/v1/models/{model}/versions/v2/challenge", json={"mode": "shadow"}).is_success
    canary = {"mode": "canary", "share": 0.1, "entity_key": "region"}
    assert api.post(f"/v1/models/{model}/versions/v3/challenge", json=canary).is_success


def _traffic(store: Store, model: str) -> tuple[Any, ...]:
    """N requests v1 answered and v2 scored in shadow (FAILED of them failing), the first
    LABELLED labelled: v1 right 70 % of the time, v2 85 %."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, N)
    a = np.where(rng.random(N) < 0.70, y, 1 - y)
    b = np.where(rng.random(N) < 0.85, y, 1 - y).astype(float)
    failed = rng.choice(N, FAILED, replace=False)
    b[failed] = np.nan
    latency, champion_latency = rng.gamma(4, 1.5, N), rng.gamma(4, 1.0, N)
    ids, now = [f"r{i:05d}" for i in range(N)], time.time()
    with store.write() as conn:
        conn.execute(
            t.predictions.insert(),
            [
                {"model": model, "prediction_id": pid, "version": "v1", "event_time": now,
                 "bucket": 0, "segment": "", "prediction": str(a[i]), "score": None,
                 "batch_id": 1, "received_at": now}
                for i, pid in enumerate(ids)
            ],
        )  # fmt: skip
        conn.execute(
            t.actuals.insert(),
            [
                {"model": model, "prediction_id": pid, "label": str(y[i]), "received_at": now,
                 "status": "matched"}
                for i, pid in enumerate(ids[:LABELLED])
            ],
        )  # fmt: skip
    rows = [
        {"version": "v2", "prediction_id": pid, "score": None, "at": now,
         "prediction": None if np.isnan(b[i]) else str(b[i]),
         "error": "boom" if np.isnan(b[i]) else None,
         "latency_ms": float(latency[i]), "champion_latency_ms": float(champion_latency[i])}
        for i, pid in enumerate(ids)
    ]  # fmt: skip
    states.add_shadow(store, model, rows)
    return y[:LABELLED], a, b, latency, champion_latency


@pytest.fixture(scope="module")
def live(module_databases: Callable[[], str], module_server: Any) -> Iterator[Live]:
    url = module_databases()
    env = {"WATCHKEEPER_REQUIRE_TOKENS": "true", "WATCHKEEPER_EVALUATION_INTERVAL_SECONDS": "0.3"}
    srv = module_server(url, env=env)
    store = Store(Settings(database_url=url).sqlalchemy_url)
    try:
        admin = create_token(store, "versions-admin", ["admin"])
        read = create_token(store, "versions-read", ["read"])
        bearer = {"authorization": f"Bearer {admin}"}
        with httpx.Client(base_url=srv.url, headers=bearer, timeout=60) as api:
            for model in (MODEL, SWAP, CLICK):
                _register(api, model)
            policy = {"min_labelled": 200, "mode": "manual"}
            for model in (MODEL, CLICK):
                assert api.put(f"/v1/models/{model}/promotion-policy", json=policy).is_success
            data = _traffic(store, MODEL)
            _traffic(store, CLICK)  # the same requests: the browser promotes its v2
            deadline = time.monotonic() + 60
            for model in (MODEL, CLICK):
                while not api.get(f"/v1/models/{model}/verdicts").json()["verdicts"]:
                    assert time.monotonic() < deadline, f"the server took no verdict on {model}"
                    time.sleep(0.2)
    finally:
        store.close()
    yield Live(srv.url, admin, read, *data)


@contextmanager
def session(live: Live, token: str) -> Iterator[httpx.Client]:
    """A browser-like client signed in to the dashboard with ``token``."""
    with httpx.Client(base_url=live.url, timeout=60, follow_redirects=False) as c:
        form = c.get("/ui/login").text
        r = c.post("/ui/login", data={"token": token, "next": "/", "csrf": csrf_of(form)})
        assert r.status_code == 303, r.text
        yield c


def csrf_of(text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found, "no form with a CSRF token"
    return found.group(1)


def panel(text: str, attribute: str, version: str) -> str:
    """The panel of one challenger (or retired version), up to the next panel or section."""
    for chunk in re.split(r'<div class="panel challenger" |</section>', text):
        if chunk.startswith(f'{attribute}="{version}"'):
            return chunk
    raise AssertionError(f"no panel {attribute}={version}")


def rows(fragment: str) -> dict[str, dict[str, str]]:
    """metric → its row's data attributes."""
    out = {}
    for tag in re.findall(r"<tr data-metric=[^>]*>", fragment, re.S):
        attrs = dict(re.findall(r'data-([\w-]+)="([^"]*)"', tag))
        out[attrs["metric"]] = attrs
    return out


def numbers(text: str) -> list[float]:
    return [float(x) for x in text.split()]


def api(live: Live, path: str) -> Any:
    r = httpx.get(live.url + path, headers={"authorization": f"Bearer {live.admin}"})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_challenger_beside_the_champion_matches_the_data_and_the_verdict(live: Live) -> None:
    with session(live, live.read) as c:
        text = c.get(f"/ui/models/{MODEL}/versions").text
    v2 = panel(text, "data-challenger", "v2")
    ok = ~np.isnan(live.b)
    assert re.search(rf'data-figure="shadowed">{N}<', v2)
    scored = ok[:LABELLED]
    assert re.search(rf'data-figure="labelled">{int(scored.sum())}<', v2)
    agreement = float(re.search(r'data-figure="agreement" data-value="([^"]+)"', v2).group(1))  # type: ignore[union-attr]
    assert agreement == pytest.approx(np.mean(live.a[ok] == live.b[ok]))
    error = float(re.search(r'data-figure="error_rate" data-value="([^"]+)"', v2).group(1))  # type: ignore[union-attr]
    assert error == pytest.approx(FAILED / N)
    p50, p95 = np.percentile(live.latency[ok], [50, 95])
    c50, c95 = np.percentile(live.champion_latency, [50, 95])
    latency = re.search(r'data-figure="latency">(.*?)</div><div class="sub">(.*?)</div>', v2)
    assert latency is not None
    shown = [float(x) for x in re.findall(r"[\d.]+", latency.group(1) + latency.group(2))]
    assert shown == pytest.approx([p50, p95, c50, c95], rel=1e-3)  # 4 significant digits
    # the figures now, on the labelled pairs: the oracles, then the verdict's evidence
    now = rows(v2.split('class="verdict"')[0])
    y, a, b = live.y[scored], live.a[:LABELLED][scored], live.b[:LABELLED][scored]
    assert float(now["accuracy"]["champion"]) == pytest.approx(np.mean(a == y))
    assert float(now["accuracy"]["challenger"]) == pytest.approx(np.mean(b == y))
    assert float(now["f1"]["champion"]) == pytest.approx(f1_score(y, a))
    assert float(now["f1"]["challenger"]) == pytest.approx(f1_score(y, b))
    verdicts = api(live, f"/v1/models/{MODEL}/verdicts")["verdicts"]
    assert len(verdicts) == 1 and verdicts[0]["decision"] == "ready"
    evidence = verdicts[0]["evidence"]
    for row in (now["accuracy"], rows(v2.split('class="verdict"')[1])["accuracy"]):
        assert int(row["n"]) == evidence["n"] == int(scored.sum())
        assert float(row["champion"]) == evidence["champion"]
        assert float(row["challenger"]) == evidence["challenger"]
        assert numbers(row["champion-interval"]) == evidence["intervals"]["champion"]
        assert numbers(row["challenger-interval"]) == evidence["intervals"]["challenger"]
        assert float(row["difference"]) == evidence["difference"]
        assert numbers(row["ci"]) == [evidence["ci_low"], evidence["ci_high"]]
        assert float(row["p-value"]) == evidence["p_value"]
    verdict = re.search(r'data-verdict="(\d+)" data-decision="(\w+)"', v2)
    assert verdict is not None and verdict.groups() == (str(verdicts[0]["id"]), "ready")
    guards = evidence["guards"]
    for name in ("latency_p95", "error_rate"):
        badge = "passes" if guards[name]["passed"] else "fails"
        assert re.search(rf'data-guard="{name}">[\w ]+ {badge}<', v2)
    # the canary has no paired comparison; the policy is the one set through the API
    assert "no paired comparison" in panel(text, "data-challenger", "v3")
    policy = re.search(r'<section id="policy">(.*?)</section>', text, re.S)
    assert policy is not None
    assert "set through the API" in policy.group(1) and "200 before a verdict" in policy.group(1)
    assert "manual:" in policy.group(1)


def test_a_viewer_sees_no_forms_and_a_forged_post_is_refused(live: Live) -> None:
    with session(live, live.read) as c:
        text = c.get(f"/ui/models/{SWAP}/versions").text
        assert "data-action=" not in text
        forged = {"csrf": csrf_of(c.get("/").text), "next": f"/ui/models/{SWAP}/versions"}
        for path in ("versions/v2/promote", "versions/v3/retire", "rollback"):
            r = c.post(f"/ui/models/{SWAP}/{path}", data=forged)
            assert r.status_code == 403 and "read scope only" in r.text, path
    with session(live, live.admin) as c:
        assert 'data-action="promote"' in c.get(f"/ui/models/{SWAP}/versions").text
        r = c.post(f"/ui/models/{SWAP}/versions/v2/promote", data={"next": "/"})
        assert r.status_code == 403 and "CSRF token" in html.unescape(r.text)
    assert api(live, f"/v1/models/{SWAP}")["champion"] == "v1"
    assert not [e for e in api(live, f"/v1/models/{SWAP}/history")["events"] if e["kind"] in ("promoted", "retired")]  # fmt: skip


def test_an_admin_promotes_rolls_back_and_retires_each_once_in_the_history(live: Live) -> None:
    here = f"/ui/models/{SWAP}/versions"
    with session(live, live.admin) as c:

        def post(path: str) -> httpx.Response:
            token = csrf_of(c.get(here).text)
            r = c.post(f"/ui/models/{SWAP}/{path}", data={"csrf": token, "next": here})
            assert r.status_code == 303, r.text
            return c.get(r.headers["location"])

        page = post("versions/v2/promote")
        assert 'id="flash">Version v2 is now the champion; v1 is retired' in page.text
        assert api(live, f"/v1/models/{SWAP}")["champion"] == "v2"
        assert 'data-version="v2" data-state="champion"' in page.text
        assert 'data-action="rollback">Roll back to v1<' in page.text
        assert 'data-retired="v1"' in page.text
        page = post("rollback")
        assert "Rolled back: version v1 is the champion again; v2 is retired." in page.text
        page = post("versions/v3/retire")
        assert 'id="flash">Version v3 is retired.' in page.text
        assert 'data-version="v3" data-state="retired"' in page.text
        r = c.post(
            f"/ui/models/{SWAP}/versions/v1/promote",
            data={"csrf": csrf_of(c.get(here).text), "next": here},
        )
        assert r.status_code == 409 and "already" in html.unescape(r.text)
    events = api(live, f"/v1/models/{SWAP}/history")["events"]
    steps = [(e["kind"], e["version"]) for e in reversed(events) if e["kind"] in ("promoted", "rolled_back", "retired")]  # fmt: skip
    assert steps == [("promoted", "v2"), ("rolled_back", "v1"), ("retired", "v3")]
    assert all(e["detail"]["by"] == "dashboard" for e in events if e["kind"] == "promoted")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


@pytest.mark.slow  # a browser
def test_an_admin_clicks_promote_and_the_page_shows_the_new_champion(
    browser: Any, live: Live
) -> None:
    here = f"{live.url}/ui/models/{CLICK}/versions"
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(here)
        page.fill("#token", live.admin)
        page.click("button[type=submit]")
        page.wait_for_url(here)
        panel = page.locator('[data-challenger="v2"]')
        assert panel.locator("[data-decision]").get_attribute("data-decision") == "ready"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "versions-page.png"), full_page=True)
        panel.locator('button[data-action="promote"]').click()
        page.wait_for_url(f"{here}?done=promoted")
        flash = page.locator("#flash").inner_text()
        assert flash == "Version v2 is now the champion; v1 is retired and can be rolled back to."
        state = page.locator('tr[data-version="v2"]').get_attribute("data-state")
        assert state == "champion"
        assert page.locator('tr[data-version="v1"]').get_attribute("data-state") == "retired"
        assert page.locator('button[data-action="rollback"]').inner_text() == "Roll back to v1"
        assert page.locator('[data-retired="v1"]').count() == 1
        page.screenshot(path=str(ARTIFACTS / "versions-page-promoted.png"), full_page=True)
    finally:
        context.close()
    assert not errors, errors
    assert api(live, f"/v1/models/{CLICK}")["champion"] == "v2"
