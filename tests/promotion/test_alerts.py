"""Promotion and the alerts, on both backends: a challenger a ``manual`` policy finds ready is
announced once through the alert machinery (a real webhook receiver on loopback) and the alert
resolves when it is promoted; an alert raised on the old champion that a new champion's window
resolves names the version that window measured."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.promotion.test_verdict import traffic
from watchkeeper.alerts.catalog import Catalog
from watchkeeper.alerts.engine import AlertEngine
from watchkeeper.alerts.monitors import parse_monitor
from watchkeeper.alerts.notifiers import build_notifiers
from watchkeeper.alerts.outbox import Outbox
from watchkeeper.alerts.queries import get_alert, list_alerts, list_deliveries
from watchkeeper.errors import InputError
from watchkeeper.promotion.policy import Policy
from watchkeeper.promotion.verdict import judge
from watchkeeper.store import promotion as states
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

H = 3600


def engine(store: Store, url: str, *monitors: dict[str, Any]) -> tuple[AlertEngine, Outbox]:
    built = build_notifiers({"hook": {"type": "webhook", "url": url}})
    parsed = [parse_monitor(m, notifiers=list(built), source="config") for m in monitors]
    eng = AlertEngine(store, Catalog(store, parsed, built), built, public_url="http://wk.test")
    return eng, Outbox(store, built, max_attempts=3, backoff=0.01, timeout=5.0)


def deliver(store: Store, box: Outbox) -> None:
    deadline = time.monotonic() + 20
    while list_deliveries(store, status="pending") and time.monotonic() < deadline:
        box.run_once()
        time.sleep(0.02)


def test_a_ready_challenger_is_announced_once_and_resolved_by_its_promotion(
    store: Store, webhook_receiver: Any
) -> None:
    states.challenge(store, "churn", "v2", mode="shadow")
    eng, box = engine(store, webhook_receiver.url)
    traffic(store, 400, 0.70, 0.85)
    policy = Policy(min_labelled=200, mode="manual")
    verdict = judge(store, "churn", "v2", policy)
    assert verdict is not None and verdict.decision == "ready"
    eng.run_once()
    deliver(store, box)
    # another look at more labels says ready again: no second alert, no second notice
    traffic(store, 200, 0.70, 0.85, seed=1, start=400)
    again = judge(store, "churn", "v2", policy)
    assert again is not None and again.decision == "ready"
    eng.run_once()
    eng.run_once()
    deliver(store, box)
    [alert] = list_alerts(store)
    assert (alert["monitor"], alert["target"], alert["state"]) == (
        "ready_to_promote",
        "v2",
        "firing",
    )
    [request] = webhook_receiver.wait_for(1)
    sent = request.json()["alert"]
    e, d = verdict.evidence, sent["detail"]
    assert sent["state"] == "firing" and sent["model"] == "churn" and sent["id"] == alert["id"]
    assert (d["kind"], d["champion"], d["challenger"]) == ("ready_to_promote", "v1", "v2")
    assert (d["n"], d["p_value"], d["metric"]) == (400, e["p_value"], "accuracy")
    assert (d["champion_value"], d["challenger_value"]) == (e["champion"], e["challenger"])
    assert d["intervals"] == e["intervals"] and d["verdict_id"] == verdict.id
    assert d["promote"] == {
        "cli": "watchkeeper promote churn v2",
        "api": 'POST /v1/models/churn/promote {"version": "v2"}',
    }
    lo, hi = e["intervals"]["challenger"]
    text = sent["summary"]
    assert "challenger v2 is ready to promote over champion v1" in text
    assert f"accuracy {e['challenger']:.4g} [{lo:.4g}, {hi:.4g}]" in text
    assert f"n=400, p={e['p_value']:.4g}" in text and "watchkeeper promote churn v2" in text

    states.promote(store, "churn", "v2", detail={"by": "test"})
    eng.run_once()
    deliver(store, box)
    _, resolved = webhook_receiver.wait_for(2)
    body = resolved.json()["alert"]
    assert body["id"] == alert["id"] and body["state"] == "resolved"
    assert "v2 was promoted" in body["summary"]
    assert get_alert(store, alert["id"])["state"] == "resolved"
    eng.run_once()
    deliver(store, box)
    assert len(webhook_receiver.delivered) == 2


def test_a_retired_challengers_alert_resolves_and_the_name_is_reserved(
    store: Store, webhook_receiver: Any
) -> None:
    states.challenge(store, "churn", "v2", mode="shadow")
    eng, box = engine(store, webhook_receiver.url)
    traffic(store, 400, 0.70, 0.85)
    assert judge(store, "churn", "v2", Policy(min_labelled=200, mode="manual")) is not None
    eng.run_once()
    states.retire(store, "churn", "v2")
    eng.run_once()
    deliver(store, box)
    [alert] = list_alerts(store)
    assert alert["state"] == "resolved"
    _, resolved = webhook_receiver.wait_for(2)
    assert "v2 was retired" in resolved.json()["alert"]["summary"]
    with pytest.raises(InputError, match="'ready_to_promote' is the name of the challengers"):
        parse_monitor({"name": "ready_to_promote", "model": "churn", "metric": "accuracy",
                       "condition": "<= 0.8"}, notifiers=[], source="config")  # fmt: skip


def windows(store: Store, version: str, ws: int, accuracy: float, at: float) -> None:
    """One evaluated window of ``version`` as the evaluator writes it."""
    key = {"model": "churn", "version": version, "segment": "", "window_start": ws}
    with store.write() as conn:
        conn.execute(
            t.metric_points.insert(),
            [
                {**key, "window_seconds": H, "metric": m, "feature": "", "value": v, "detail": None}
                for m, v in (("accuracy", accuracy), ("labels", 100), ("count", 100))
            ],
        )
        conn.execute(t.evaluations.insert().values(**key, evaluated_at=at, summary={}))


def test_an_alert_resolved_by_the_new_champions_window_names_that_version(
    store: Store, webhook_receiver: Any
) -> None:
    monitor = {"name": "floor", "model": "churn", "metric": "accuracy", "condition": "<= 0.85",
               "min_samples": 50}  # fmt: skip
    eng, box = engine(store, webhook_receiver.url, monitor)
    t0, now = 1_800_000_000, time.time()
    windows(store, "v1", t0, 0.70, now)
    eng.run_once(now=now + 1)
    [alert] = list_alerts(store)
    assert alert["state"] == "firing" and alert["version"] == "v1"
    states.promote(store, "churn", "v2")
    windows(store, "v2", t0 + H, 0.95, now + 2)
    eng.run_once(now=now + 3)
    deliver(store, box)
    [alert] = list_alerts(store)
    assert alert["state"] == "resolved" and alert["detail"]["resolved_by"]["version"] == "v2"
    _, resolved = webhook_receiver.wait_for(2)
    text = resolved.json()["alert"]["summary"]
    assert "accuracy 0.95 in window" in text and "on churn v2" in text, text
    assert "the champion since the alert on v1" in text and "on churn v1" not in text, text
    assert get_alert(store, alert["id"])["history"][-1]["message"] == text
