"""A page shown again (a watched dashboard reloads it every few seconds) does not parse the
window profile it shows again while that profile is unchanged; once late events change it,
the page parses it afresh and shows the new figures."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.dashboard.dashboard_data import MODEL, Filled, post_json, settle
from watchkeeper.example_model import FEATURES
from watchkeeper.profiles import DatasetProfile

PAGES = (f"/ui/models/{MODEL}?range=7d", f"/ui/models/{MODEL}/features/{FEATURES[0]}?range=7d")
ROWS = re.compile(r'<tr><td>Rows</td>\s*<td class="n">([^<]*)</td>\s*<td class="n">([^<]*)</td>')


def _decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the profiles parsed (the real parser runs)."""
    calls: list[int] = []
    real = DatasetProfile.from_dict

    def counted(cls: type[DatasetProfile], data: dict[str, Any]) -> DatasetProfile:
        calls.append(1)
        return real(data)

    monkeypatch.setattr(DatasetProfile, "from_dict", classmethod(counted))
    return calls


def _get(filled: Filled, path: str) -> str:
    r = filled.client.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:2000])
    return r.text


def test_a_page_shown_again_parses_no_profile_until_it_changes(
    filled: Filled, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path in PAGES:
        _get(filled, path)
    decoded = _decodes(monkeypatch)
    for _ in range(3):
        for path in PAGES:
            _get(filled, path)
    assert decoded == [], f"{len(decoded)} profiles parsed again for pages shown again"
    [(_, before)] = ROWS.findall(_get(filled, PAGES[1]))

    # late events for the newest window: its profile changes, the page shows it
    newest = max(e["timestamp"] for e in filled.sent.events)
    ok = [e for e in filled.sent.events if e["status"] == "ok"][:30]
    late = [{**e, "prediction_id": f"late-{i}", "timestamp": newest} for i, e in enumerate(ok)]
    r = post_json(filled.client, f"/v1/models/{MODEL}/predictions", {"events": late})
    assert r.status_code == 200 and r.json()["accepted"] == len(late), r.text
    settle(filled.app)
    [(_, after)] = ROWS.findall(_get(filled, PAGES[1]))
    assert decoded, "the changed profile was not parsed"
    assert int(after.replace(",", "")) == int(before.replace(",", "")) + len(late)
