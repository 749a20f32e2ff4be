"""The alerts page against the alert engine: firing alerts are listed, silencing one from the
page stores a silence matching exactly that alert (read back through the JSON API), and
ending it from the page ends it."""

from __future__ import annotations

import re

import pytest

from tests.dashboard.dashboard_data import MODEL, MONITOR, Filled
from watchkeeper.server.dashboard import alerts_view

pytestmark = pytest.mark.skipif(
    not alerts_view.available(), reason="this build has no alert engine (watchkeeper.alerts)"
)


def open_alerts(filled: Filled) -> list[dict[str, object]]:
    r = filled.client.get("/v1/alerts", params={"model": MODEL, "state": "open"})
    assert r.status_code == 200, r.text
    alerts: list[dict[str, object]] = r.json()["alerts"]
    return alerts


def csrf(filled: Filled) -> str:
    """The CSRF token the alerts page's forms carry (tokens are off: its ``wk_csrf`` cookie)."""
    found = re.search(r'name="csrf" value="([^"]+)"', filled.client.get("/ui/alerts").text)
    assert found is not None
    return found.group(1)


def test_open_alerts_are_listed_with_a_silence_form(filled: Filled) -> None:
    alerts = open_alerts(filled)
    assert alerts and all(a["monitor"] == MONITOR["name"] for a in alerts)
    text = filled.client.get(f"/ui/alerts?model={MODEL}").text
    for alert in alerts:
        row = re.search(
            rf'<tr data-alert="{alert["id"]}" data-state="(\w+)">(.*?)</tr>', text, re.S
        )
        assert row is not None and row.group(1) == alert["state"]
        assert 'action="/ui/alerts/silence"' in row.group(2)
    firing = sum(a["state"] == "firing" for a in alerts)
    overview = filled.client.get("/").text
    cell = re.search(rf'data-model="{MODEL}">.*?</tr>', overview, re.S)
    assert cell is not None
    assert (
        (f"{firing} firing" in cell.group(0))
        if firing
        else ('class="badge good">0' in cell.group(0))
    )


def test_silencing_from_the_page_silences_that_alert(filled: Filled) -> None:
    alert = open_alerts(filled)[0]
    r = filled.client.post(
        "/ui/alerts/silence",
        data={
            "alert": str(alert["id"]),
            "duration": "4h",
            "comment": "looking into it",
            "next": "/ui/alerts",
            "csrf": csrf(filled),
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/ui/alerts?done=silenced"
    silences = filled.client.get("/v1/silences", params={"active": "true"}).json()["silences"]
    mine = [s for s in silences if s["comment"] == "looking into it"]
    assert len(mine) == 1
    matchers = mine[0]["matchers"]
    assert matchers["monitor"] == alert["monitor"] and matchers["model"] == alert["model"]
    assert mine[0]["expires_at"] - mine[0]["created_at"] == pytest.approx(4 * 3600)
    page = filled.client.get("/ui/alerts?done=silenced").text
    assert 'id="flash">Silenced.' in page
    row = re.search(rf'<tr data-alert="{alert["id"]}" [^>]*>(.*?)</tr>', page, re.S)
    assert row is not None and "badge silenced" in row.group(1)
    assert f'data-silence="{mine[0]["id"]}"' in page

    r = filled.client.post(
        f"/ui/alerts/silences/{mine[0]['id']}/expire",
        data={"next": "/ui/alerts", "csrf": csrf(filled)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    active = filled.client.get("/v1/silences", params={"active": "true"}).json()["silences"]
    assert all(s["id"] != mine[0]["id"] for s in active)
    page = filled.client.get("/ui/alerts").text
    row = re.search(rf'<tr data-alert="{alert["id"]}" [^>]*>(.*?)</tr>', page, re.S)
    assert row is not None and "badge silenced" not in row.group(1)


@pytest.mark.parametrize(
    ("form", "named"),
    [({"alert": "x", "duration": "1h"}, "alert"), ({"alert": "1", "duration": "1y"}, "duration")],
)
def test_a_bad_silence_form_is_a_400_naming_the_field(
    filled: Filled, form: dict[str, str], named: str
) -> None:
    data = {**form, "csrf": csrf(filled)}
    r = filled.client.post("/ui/alerts/silence", data=data, follow_redirects=False)
    assert r.status_code == 400 and f"form field {named}" in r.text
