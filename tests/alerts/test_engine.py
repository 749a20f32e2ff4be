"""The alert engine on SQLite and PostgreSQL: verdicts, the lifecycle, cooldown, hysteresis,
silences, the outbox against real receivers, and the migration of a version-1 database.

The engine's input is what the evaluator writes (``wk_evaluations`` and ``wk_metric_points``);
these tests write those rows for windows they choose, then run the engine with an explicit
``now``, so every transition is checked at the window where it must happen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from sklearn.metrics import accuracy_score

from watchkeeper.alerts.catalog import Catalog
from watchkeeper.alerts.engine import AlertEngine
from watchkeeper.alerts.monitors import parse_monitor
from watchkeeper.alerts.notifiers import build_notifiers
from watchkeeper.alerts.outbox import Outbox
from watchkeeper.alerts.queries import firing_counts, get_alert, list_alerts, list_deliveries
from watchkeeper.alerts.silences import create_silence, expire_silence
from watchkeeper.ingest.service import IngestService
from watchkeeper.settings import Settings
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

H = 3600
T0 = 1_800_000_000  # a window boundary (divisible by 3600)
NOW = T0 + 100 * H


def reference(rows: int = 1000, correct: int = 900, seed: int = 0) -> pa.Table:
    """A reference whose prediction ``p`` matches the target ``y`` on exactly ``correct`` rows."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    p = y.copy()
    wrong = rng.choice(rows, rows - correct, replace=False)
    p[wrong] = 1 - p[wrong]
    return pa.table(
        {"x": rng.normal(0, 1, rows), "plan": rng.choice(["a", "b"], rows), "y": y, "p": p}
    )


@pytest.fixture
def store(database_url: str, open_store: Callable[[str], Store], tmp_path: Path) -> Store:
    s = open_store(database_url)
    IngestService(s, Settings(data_dir=tmp_path)).register(
        "churn", reference(), target="y", prediction="p", window_seconds=H
    )
    return s


def window(
    store: Store,
    ws: int,
    metrics: dict[str, Any],
    *,
    at: float,
    model: str = "churn",
    segment: str = "",
) -> None:
    """Write one evaluated window as the evaluator does: its points replaced, evaluated at ``at``.

    ``metrics``: name → value, or name → {feature: value} / {feature: (value, detail)}."""
    mp, ev = t.metric_points.c, t.evaluations.c
    key = {"model": model, "version": "v1", "segment": segment}
    rows = []
    for name, value in metrics.items():
        items = value.items() if isinstance(value, dict) else [("", value)]
        for feature, given in items:
            v, detail = given if isinstance(given, tuple) else (given, None)
            rows.append(
                {
                    **key,
                    "window_start": ws,
                    "window_seconds": H,
                    "metric": name,
                    "feature": feature,
                    "value": v,
                    "detail": detail,
                }
            )
    with store.write() as conn:
        conn.execute(
            t.metric_points.delete().where(
                (mp.model == model) & (mp.window_start == ws) & (mp.segment == segment)
            )
        )
        conn.execute(t.metric_points.insert(), rows)
        conn.execute(
            t.evaluations.delete().where(
                (ev.model == model) & (ev.window_start == ws) & (ev.segment == segment)
            )
        )
        conn.execute(
            t.evaluations.insert().values(**key, window_start=ws, evaluated_at=at, summary={})
        )


NOTIFIERS = {
    "hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"},
    "audit": {"type": "log"},
}


def engine(
    store: Store, *specs: dict[str, Any], notifiers: dict[str, Any] | None = None
) -> AlertEngine:
    built = build_notifiers(NOTIFIERS if notifiers is None else notifiers)
    monitors = [
        parse_monitor(s, notifiers=list(built), source="config", allow_commands=True) for s in specs
    ]
    return AlertEngine(store, Catalog(store, monitors, built), built, public_url="http://wk.test")


def acc(name: str = "floor", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "model": "churn",
        "metric": "accuracy",
        "condition": "<= 0.85",
        "min_samples": 50,
        **extra,
    }


class Run:
    """Feed windows one evaluator pass at a time: ``run(ws_index, accuracy, labels)``."""

    def __init__(self, store: Store, eng: AlertEngine, start: float = NOW) -> None:
        self.store, self.eng, self.now = store, eng, float(start)

    def __call__(
        self, i: int, accuracy: float, labels: int = 100, *, after: float = 60.0
    ) -> list[dict[str, Any]]:
        self.now += after
        window(
            self.store,
            T0 + i * H,
            {"accuracy": accuracy, "labels": labels, "count": labels},
            at=self.now,
        )
        self.eng.run_once(now=self.now)
        return list_alerts(self.store)


def states(alerts: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(a["id"], a["state"]) for a in reversed(alerts)]


def test_lifecycle_pending_firing_resolved_cancelled(store: Store) -> None:
    run = Run(store, engine(store, acc(for_windows=2, severity="critical")))
    assert run(0, 0.92) == []
    [first] = run(1, 0.80)
    assert first["state"] == "pending"
    assert states(run(2, 0.70, labels=20)) == [
        (first["id"], "pending")
    ]  # too few labels: not judged
    alerts = run(3, 0.78)
    assert states(alerts) == [(first["id"], "firing")]
    a = alerts[0]
    assert a["value"] == 0.78 and a["window_start"] == T0 + 3 * H and a["sample_size"] == 100
    when = datetime.fromtimestamp(T0 + 3 * H, UTC).strftime("%Y-%m-%d %H:%M")
    assert a["summary"] == f"accuracy 0.78 <= 0.85 in window {when} (n=100) on churn v1"
    assert (a["condition"], a["threshold"], a["severity"]) == ("<= 0.85", 0.85, "critical")
    with store.engine.connect() as conn:
        payloads = conn.execute(sa.select(t.deliveries.c.payload)).scalars().all()
    assert [p["url"] for p in payloads] == [f"http://wk.test/v1/alerts/{a['id']}"] * 2
    assert {p["state"] for p in payloads} == {"firing"}
    firing = list_deliveries(store, alert_id=a["id"])
    assert sorted((d["notifier"], d["transition"], d["status"]) for d in firing) == [
        ("audit", "firing", "pending"),
        ("hook", "firing", "pending"),
    ]
    assert firing_counts(store) == {("churn", "critical"): 1}
    alerts = run(4, 0.70)  # still firing: the alert follows its newest window, no new notice
    assert states(alerts) == [(a["id"], "firing")] and alerts[0]["value"] == 0.70
    assert len(list_deliveries(store, alert_id=a["id"])) == 2
    alerts = run(5, 0.93)
    assert states(alerts) == [(a["id"], "resolved")] and alerts[0]["resolved_at"] == run.now
    resolved = [
        d for d in list_deliveries(store, alert_id=a["id"]) if d["transition"] == "resolved"
    ]
    assert sorted(d["notifier"] for d in resolved) == ["audit", "hook"]
    assert firing_counts(store) == {}
    alerts = run(6, 0.80)  # a new episode: a new alert, pending
    assert states(alerts) == [(a["id"], "resolved"), (a["id"] + 1, "pending")]
    alerts = run(7, 0.95)  # cleared before firing: cancelled and never notified
    assert states(alerts) == [(a["id"], "resolved"), (a["id"] + 1, "cancelled")]
    assert list_deliveries(store, alert_id=a["id"] + 1) == []
    history = get_alert(store, a["id"])["history"]
    assert [h["state"] for h in history] == ["pending", "firing", "resolved"]
    assert [h["window_start"] for h in history] == [T0 + H, T0 + 3 * H, T0 + 5 * H]
    assert history[-1]["message"].startswith("resolved: accuracy 0.93 in window")


def test_late_labels_that_reevaluate_an_old_window_do_not_reopen(store: Store) -> None:
    run = Run(store, engine(store, acc()))
    run(0, 0.80)
    run(1, 0.90)
    [a] = list_alerts(store)
    assert a["state"] == "resolved"
    run(0, 0.60, labels=300)  # window 0 again, with more labels: older than the latest window
    assert states(list_alerts(store)) == [(a["id"], "resolved")]
    run(1, 0.70, labels=300)  # the latest window itself turns bad: a new alert
    assert states(list_alerts(store)) == [(a["id"], "resolved"), (a["id"] + 1, "firing")]


def test_cooldown_holds_a_new_alert_pending(store: Store) -> None:
    eng = engine(store, acc(cooldown="1h"))
    run = Run(store, eng)
    run(0, 0.80)
    run(1, 0.90)
    resolved_at = list_alerts(store)[0]["resolved_at"]
    alerts = run(2, 0.80, after=600)
    assert alerts[0]["state"] == "pending"
    eng.run_once(now=resolved_at + 3599)
    assert list_alerts(store)[0]["state"] == "pending"
    eng.run_once(now=resolved_at + 3601)
    assert list_alerts(store)[0]["state"] == "firing"


def test_hysteresis_keeps_firing_until_clearly_past(store: Store) -> None:
    run = Run(store, engine(store, acc(hysteresis=0.02, resolve_windows=2)))
    run(0, 0.80)
    assert run(1, 0.86)[0]["state"] == "firing"  # not a breach, not healthy either
    assert run(2, 0.88)[0]["state"] == "firing"  # healthy once: resolve_windows is 2
    assert run(3, 0.90)[0]["state"] == "resolved"


def test_silence_mutes_then_releases_the_notice(store: Store) -> None:
    run = Run(store, engine(store, acc()))
    silence = create_silence(
        store, {"model": "ch*", "severity": "warning"}, duration="1h", now=run.now
    )
    [a] = run(0, 0.80)
    assert a["state"] == "firing" and a["notified"] is None
    assert {d["status"] for d in list_deliveries(store, alert_id=a["id"])} == {"silenced"}
    expire_silence(store, silence["id"], now=run.now + 1)
    run.eng.run_once(now=run.now + 2)
    assert {d["status"] for d in list_deliveries(store, alert_id=a["id"])} == {"pending"}
    assert list_alerts(store)[0]["notified"] == "firing"


def test_a_silenced_episode_resolves_without_notices(store: Store) -> None:
    run = Run(store, engine(store, acc()))
    create_silence(store, {"monitor": "floor"}, duration="1h", now=run.now)
    [a] = run(0, 0.80)
    run(1, 0.95)
    assert list_alerts(store)[0]["state"] == "resolved"
    assert {(d["transition"], d["status"]) for d in list_deliveries(store, alert_id=a["id"])} == {
        ("firing", "silenced")
    }


def test_change_from_the_reference_accuracy(store: Store) -> None:
    ref = reference()
    expected = accuracy_score(ref.column("y").to_numpy(), ref.column("p").to_numpy())
    spec = {
        "name": "drop",
        "model": "churn",
        "metric": "accuracy",
        "change": {"drops_by": "5%"},
        "min_samples": 1,
    }
    run = Run(store, engine(store, spec))
    threshold = expected * 0.95
    assert run(0, threshold + 0.001) == []
    [a] = run(1, threshold - 0.001)
    assert a["state"] == "firing"
    assert a["threshold"] == pytest.approx(threshold)
    assert a["detail"]["reference"] == pytest.approx(expected)
    assert a["condition"] == f"< {threshold:.4g} (drops by more than 5% from {expected:.4g})"


def test_drift_alert_lists_the_top_features(store: Store) -> None:
    spec = {
        "name": "drift",
        "model": "churn",
        "metric": "drifted_share",
        "condition": ">= 0.5",
        "min_samples": 1,
    }
    eng = engine(store, spec)
    drift = {
        "x": (0.31, {"threshold": 0.1, "drifted": True, "effect_size": 0.4}),
        "plan": (0.05, {"threshold": 0.1, "drifted": False, "effect_size": 0.02}),
    }
    window(store, T0, {"drifted_share": 0.5, "count": 500, "drift_statistic": drift}, at=NOW)
    eng.run_once(now=NOW)
    [a] = list_alerts(store)
    assert [f["feature"] for f in a["top_features"]] == ["x", "plan"]
    assert a["top_features"][0]["statistic"] == 0.31 and a["top_features"][0]["threshold"] == 0.1


def test_per_feature_monitor_has_one_alert_per_target(store: Store) -> None:
    spec = {
        "name": "missing",
        "model": "churn",
        "metric": "missing_share",
        "condition": "> 0.2",
        "min_samples": 1,
    }
    eng = engine(store, spec)
    window(store, T0, {"count": 100, "missing_share": {"x": 0.5, "plan": 0.3, "y": 0.0}}, at=NOW)
    eng.run_once(now=NOW)
    window(
        store,
        T0 + H,
        {"count": 100, "missing_share": {"x": 0.6, "plan": 0.0, "y": 0.0}},
        at=NOW + 1,
    )
    eng.run_once(now=NOW + 1)
    got = {(a["target"], a["state"]) for a in list_alerts(store)}
    assert got == {("x", "firing"), ("plan", "resolved")}


def test_removed_monitor_resolves_its_alerts(store: Store) -> None:
    eng = engine(store)
    eng.catalog.put(acc(name="api-floor"), create=True)
    run = Run(store, eng)
    [a] = run(0, 0.80)
    assert a["state"] == "firing" and a["monitor"] == "api-floor"
    eng.catalog.delete("api-floor")
    eng.run_once(now=run.now + 1)
    [a] = list_alerts(store)
    assert a["state"] == "resolved"
    assert {(d["transition"], d["notifier"]) for d in list_deliveries(store, alert_id=a["id"])} == {
        ("firing", "hook"),
        ("firing", "audit"),
        ("resolved", "hook"),
        ("resolved", "audit"),
    }


def test_changed_spec_rejudges_the_windows(store: Store) -> None:
    run = Run(store, engine(store, acc()))
    run(0, 0.84)
    assert list_alerts(store)[0]["state"] == "firing"
    stricter = engine(store, acc(condition="<= 0.80"))
    stricter.run_once(now=run.now + 1)  # the same name, judged anew: 0.84 is fine now
    assert list_alerts(store)[0]["state"] == "resolved"


def test_unrouted_and_unconfigured_notifiers(store: Store) -> None:
    notifiers = {"crit": {"type": "log", "severities": ["critical"]}, "audit": {"type": "log"}}
    eng = engine(store, notifiers=notifiers)
    eng.catalog.notifiers = list(build_notifiers(notifiers))
    eng.catalog.put(acc(notify=["crit", "audit"]), create=True)
    eng.notifiers.pop("audit")  # removed from the settings since the monitor was stored
    [a] = Run(store, eng)(0, 0.8)
    [d] = list_deliveries(store, alert_id=a["id"])  # crit routes critical only: no row
    assert (d["notifier"], d["status"], d["last_error"]) == (
        "audit",
        "failed",
        "notifier 'audit' is not configured",
    )


# ------------------------------------------------------------------------------ the outbox
def test_outbox_retries_with_backoff_and_records_failures(
    store: Store, webhook_receiver: Any, smtp_receiver: Any
) -> None:
    notifiers = {
        "hook": {"type": "webhook", "url": webhook_receiver.url, "secret": "s3cret"},
        "mail": {
            "type": "email",
            "host": smtp_receiver.host,
            "port": smtp_receiver.port,
            "from": "wk@test",
            "to": ["ml@test"],
        },
        "down": {"type": "webhook", "url": "http://127.0.0.1:9/hook"},
    }
    eng = engine(store, acc(), notifiers=notifiers)
    box = Outbox(store, eng.notifiers, max_attempts=3, backoff=0.01, timeout=2.0)
    webhook_receiver.fail_next(1, status=503)
    [a] = Run(store, eng, start=time.time())(0, 0.80, after=0.0)
    deadline = time.monotonic() + 20
    while list_deliveries(store, status="pending") and time.monotonic() < deadline:
        box.run_once()
        time.sleep(0.05)
    rows = {d["notifier"]: d for d in list_deliveries(store, alert_id=a["id"])}
    assert (rows["hook"]["status"], rows["hook"]["attempts"]) == ("sent", 2)
    assert (rows["mail"]["status"], rows["mail"]["attempts"]) == ("sent", 1)
    assert (rows["down"]["status"], rows["down"]["attempts"]) == ("failed", 3)
    assert "connection refused" in rows["down"]["last_error"]
    [request] = webhook_receiver.delivered
    body = request.json()
    assert body["alert"]["id"] == a["id"] and body["alert"]["state"] == "firing"
    assert request.header(
        "X-Watchkeeper-Signature",
    ).startswith("sha256=")
    [mail] = smtp_receiver.messages
    assert "accuracy" in mail["Subject"]
    from watchkeeper.alerts.queries import delivery_failures

    assert delivery_failures(store) == {"hook": 1, "mail": 0, "down": 3}


# ------------------------------------------------------------------------------ detectors
def labelled(store: Store, ws: int, errors: np.ndarray[Any, Any]) -> None:
    """Predictions of window ``ws`` (one every 10 s) with matched labels: 1 = a wrong one."""
    preds, labels = [], []
    for k, wrong in enumerate(errors):
        pid = f"p{ws}-{k}"
        preds.append(
            {
                "model": "churn",
                "prediction_id": pid,
                "version": "v1",
                "event_time": ws + 10.0 * k,
                "bucket": ws,
                "segment": "",
                "prediction": "1",
                "score": None,
                "batch_id": 1,
                "received_at": float(ws),
            }
        )
        labels.append(
            {
                "model": "churn",
                "prediction_id": pid,
                "label": "0" if wrong else "1",
                "received_at": float(ws),
                "status": "matched",
            }
        )
    with store.write() as conn:
        conn.execute(t.predictions.insert(), preds)
        conn.execute(t.actuals.insert(), labels)


def test_cusum_on_the_error_stream_matches_one_pass_over_it(store: Store) -> None:
    from watchkeeper.stats.detectors import BernoulliCUSUM

    rng = np.random.default_rng(5)
    n, rates = 200, [0.1, 0.1, 0.1, 0.3, 0.3, 0.3]
    streams = [(rng.random(n) < r).astype(float) for r in rates]
    ref = reference()
    p0 = 1 - accuracy_score(ref.column("y").to_numpy(), ref.column("p").to_numpy())
    hits = BernoulliCUSUM(p0=p0, threshold=5.0).update_many(np.concatenate(streams))
    expected = [bool(np.any(hits // n == i)) for i in range(len(rates))]
    assert expected[:3] == [False] * 3 and any(expected[3:])  # the oracle sees the change late
    spec = {
        "name": "errors",
        "model": "churn",
        "metric": "error",
        "detector": {"type": "cusum", "threshold": 5.0},
        "min_samples": 1,
    }
    eng = engine(store, spec)
    for i, errors in enumerate(streams):
        labelled(store, T0 + i * H, errors)
        window(store, T0 + i * H, {"labels": n, "count": n}, at=NOW + i)
        eng.run_once(now=NOW + i)
    mw = t.monitor_windows.c
    q = (
        sa.select(mw.window_start, mw.breach, mw.value)
        .where(mw.monitor == "errors")
        .order_by(mw.window_start)
    )

    def verdicts() -> list[tuple[Any, ...]]:
        with store.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q)]

    first = verdicts()
    assert [b for _, b, _ in first] == expected
    assert [v for _, _, v in first] == pytest.approx([s.mean() for s in streams])
    window(store, T0 + 2 * H, {"labels": n, "count": n}, at=NOW + 10)  # late labels: replayed
    eng.run_once(now=NOW + 10)
    assert verdicts() == first
    [a] = list_alerts(store)  # one alert; it fired at the first detection, follows the newest
    assert (a["state"], a["condition"]) == ("firing", "change detected by cusum")
    last = len(expected) - 1 - expected[::-1].index(True)
    assert a["window_start"] == T0 + last * H
    fired = [h for h in get_alert(store, a["id"])["history"] if h["state"] == "firing"]
    assert [h["window_start"] for h in fired] == [T0 + expected.index(True) * H]


# ------------------------------------------------------------------------------ band, anomaly
def test_band_from_the_first_windows(store: Store) -> None:
    baseline = [0.90, 0.92, 0.91, 0.89, 0.93]
    spec = {
        "name": "band",
        "model": "churn",
        "metric": "accuracy",
        "band": {"k": 3, "baseline_windows": 5, "side": "below"},
        "min_samples": 1,
    }
    run = Run(store, engine(store, spec))
    for i, v in enumerate(baseline):
        run(i, v)
    mean, std = float(np.mean(baseline)), float(np.std(baseline, ddof=1))  # numpy as the oracle
    low, high = mean - 3 * std, mean + 3 * std
    assert list_alerts(store) == []
    run(5, high + 0.01)  # above the band, but only "below" is watched
    assert list_alerts(store) == []
    [a] = run(6, low - 0.001)
    assert a["state"] == "firing" and a["threshold"] == pytest.approx(low)
    assert a["detail"]["low"] == pytest.approx(low) and a["detail"]["high"] == pytest.approx(high)
    assert a["condition"] == f"outside band [{low:.4g}, {high:.4g}]"
    mw = t.monitor_windows.c
    with store.engine.connect() as conn:
        learning = (
            conn.execute(sa.select(mw.breach).where(mw.window_start < T0 + 5 * H)).scalars().all()
        )
    assert learning == [None] * 5  # the baseline windows are not judged


def test_seasonal_anomaly_on_volume(store: Store) -> None:
    rng = np.random.default_rng(7)
    hours = np.arange(24 * 4)
    volume = 1000 + 300 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 10, hours.size)
    volume[30] = 5000  # an outlier in the history: robust statistics ignore it
    spec = {
        "name": "volume",
        "model": "churn",
        "metric": "volume",
        "anomaly": {"k": 4},
        "min_samples": 1,
    }
    eng = engine(store, spec)
    for h in hours[:-1]:
        window(store, T0 + int(h) * H, {"count": float(volume[h])}, at=NOW)
    eng.run_once(now=NOW)
    assert list_alerts(store) == []  # the history's outlier is history: only the latest counts
    mw = t.monitor_windows.c
    with store.engine.connect() as conn:
        flagged = (
            conn.execute(sa.select(mw.window_start).where(mw.breach.is_(True))).scalars().all()
        )
    assert flagged == [T0 + 30 * H]  # ... and it was judged an anomaly in its own window
    last = int(hours[-1])
    same_hour = [volume[h] for h in hours[:-1] if h % 24 == last % 24]
    expected = float(np.median(same_hour))  # the oracle: median of the same hour of day
    window(store, T0 + last * H, {"count": expected - 500}, at=NOW + 1)
    eng.run_once(now=NOW + 1)
    [a] = [x for x in list_alerts(store) if x["window_start"] == T0 + last * H]
    assert a["state"] == "firing" and a["metric"] == "count"
    assert a["detail"]["expected"] == pytest.approx(expected)
    assert a["detail"]["season"].startswith("daily")
    window(store, T0 + last * H, {"count": expected + 5}, at=NOW + 2)  # corrected: normal again
    eng.run_once(now=NOW + 2)
    assert [x["state"] for x in list_alerts(store) if x["id"] == a["id"]] == ["resolved"]


def test_segments_default_to_all_and_can_be_named(store: Store, tmp_path: Path) -> None:
    IngestService(store, Settings(data_dir=tmp_path)).register(
        "seg", reference(), target="y", prediction="p", segments=["plan"], window_seconds=H
    )
    everywhere = {
        "name": "all",
        "model": "seg",
        "metric": "accuracy",
        "condition": "<= 0.85",
        "min_samples": 1,
    }
    plan_b = {**everywhere, "name": "plan-b", "segment": "plan=b"}
    eng = engine(store, everywhere, plan_b)
    for segment, accuracy in (("*", 0.9), ("plan=a", 0.95), ("plan=b", 0.8)):
        window(
            store, T0, {"accuracy": accuracy, "labels": 100}, at=NOW, model="seg", segment=segment
        )
    eng.run_once(now=NOW)
    [a] = list_alerts(store)
    assert (a["monitor"], a["segment"], a["value"]) == ("plan-b", "plan=b", 0.8)
    assert a["summary"].endswith("on seg v1 [plan=b]")


def test_a_resolution_waits_for_its_firing_notice(store: Store, webhook_receiver: Any) -> None:
    eng = engine(store, acc(), notifiers={"hook": {"type": "webhook", "url": webhook_receiver.url}})
    box = Outbox(store, eng.notifiers, max_attempts=5, backoff=0.01, timeout=2.0)
    run = Run(store, eng, start=time.time())
    webhook_receiver.fail_next(1, status=503)
    run(0, 0.80, after=0.0)
    run(1, 0.95, after=0.001)  # resolved before the firing notice got through
    deadline = time.monotonic() + 20
    while list_deliveries(store, status="pending") and time.monotonic() < deadline:
        box.run_once()
        time.sleep(0.02)
    states = [r.json()["alert"]["state"] for r in webhook_receiver.delivered]
    assert states == ["firing", "resolved"]
    assert [r.status for r in webhook_receiver.requests] == [503, 200, 200]


def test_daily_points_kept_by_retention_are_not_windows(store: Store) -> None:
    day = (T0 // 86400 + 1) * 86400  # a day's start is also a window's start
    eng = engine(store, acc())
    window(store, day, {"accuracy": 0.95, "labels": 100}, at=NOW)
    with store.write() as conn:  # retention's daily roll-up of the same day: not a window
        conn.execute(
            t.metric_points.insert(),
            [
                {
                    "model": "churn",
                    "version": "v1",
                    "segment": "",
                    "window_start": day,
                    "window_seconds": 86400,
                    "metric": m,
                    "feature": "",
                    "value": v,
                    "detail": None,
                }
                for m, v in (("accuracy", 0.5), ("labels", 2400))
            ],
        )
    eng.run_once(now=NOW)
    assert list_alerts(store) == []
    mw = t.monitor_windows.c
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(mw.value, mw.breach)).all() == [(0.95, False)]
