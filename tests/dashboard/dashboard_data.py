"""The data of the dashboard tests: a short replay of the demo stream, through the HTTP API.

``fill`` sends, through the HTTP API, what ``watchkeeper demo`` sends (the churn model, its
training reference, hourly events with gradual drift and ~1 % failures, labels two hours
late), plus hostile values — a ``plan`` category and a ``country`` segment value that are
HTML, and an event rejected for a value that is HTML — and returns a record of everything sent,
from which the tests compute what the pages must show.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from watchkeeper.example_model import FEATURES
from watchkeeper.examples import _frame, churn_example

MODEL = "churn"
HOSTILE_MODEL = "hostile"
XSS_CATEGORY = "<img src=x onerror=alert(1)>"
XSS_SEGMENT = '"><script>window.__xss=1</script>'
XSS_FEATURE = '<b onmouseover="window.__xss=2">f</b>'
XSS_VALUE = "<svg onload=alert(3)>"
HOURS = 10
EVENTS_PER_HOUR = 120
LABEL_DELAY = 2
HOSTILE_EVENTS = 30  # events of the last hour whose plan is XSS_CATEGORY
# fires once the input drift of the demo stream has set in
MONITOR = {
    "name": "churn-drift",
    "model": MODEL,
    "metric": "drifted_share",
    "condition": "> 0.1",
    "severity": "critical",
}


@dataclass
class Sent:
    """Everything the fill sent, to compute expected figures from."""

    window_seconds: int = 3600
    events: list[dict[str, Any]] = field(default_factory=list)  # accepted events, as sent
    rejected: int = 0
    labels: int = 0
    first_hour: int = 0

    def per_window(self, segment: str | None = None) -> Counter[int]:
        """Events per window start, of one ``country=...`` segment or all."""
        out: Counter[int] = Counter()
        for e in self.events:
            if segment is None or f"country={e['features']['country']}" == segment:
                out[int(e["timestamp"]) // self.window_seconds * self.window_seconds] += 1
        return out

    def in_window(self, start: int) -> list[dict[str, Any]]:
        return [e for e in self.events if start <= e["timestamp"] < start + self.window_seconds]


def _reference() -> pa.Table:
    ref, _ = churn_example(reference_rows=4000, current_rows=10)
    return ref


def register(client: Any, name: str, table: pa.Table, query: str, version: str = "v1") -> None:
    """Register ``name`` ``version`` with ``table`` as its Parquet reference; expect 201."""
    buf = io.BytesIO()
    pq.write_table(table, buf)
    r = client.put(
        f"/v1/models/{name}/versions/{version}?{query}",
        content=buf.getvalue(),
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    assert r.status_code == 201, r.text


def post_json(client: Any, path: str, body: Any) -> Any:
    """POST ``body`` as JSON; missing feature values of the demo stream are NaN, which the
    ingest API reads (``json`` in ``httpx`` refuses them)."""
    headers = {"content-type": "application/json"}
    return client.post(path, content=json.dumps(body).encode(), headers=headers)


def fill(client: Any, *, hours: int = HOURS, per_hour: int = EVENTS_PER_HOUR) -> Sent:
    """Register the demo model and a hostile one; send ``hours`` of the demo stream."""
    register(
        client,
        MODEL,
        _reference(),
        "target=churned&prediction=churn_predicted&scores=churn_score&segments=country",
    )
    r = client.post("/v1/monitors", json=MONITOR)
    assert r.status_code in (201, 404), r.text  # 404: a build without the alert engine
    plan = ReplayPlan(hours=hours, events_per_hour=per_hour, label_delay_hours=LABEL_DELAY)
    rng = np.random.default_rng(5)
    sent = Sent(first_hour=(int(time.time()) // 3600 - hours) * 3600)
    waiting: dict[int, list[tuple[str, Any]]] = {}
    for h in range(hours):
        events = hour_events(plan, h, sent.first_hour + h * 3600, rng)
        if h == hours - 1:
            for e in events[:HOSTILE_EVENTS]:
                e["features"]["plan"] = XSS_CATEGORY
            events[-1]["features"]["country"] = XSS_SEGMENT
        labels = {e["prediction_id"]: e.pop("label") for e in events}
        r = post_json(client, f"/v1/models/{MODEL}/predictions", {"events": events})
        assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
        sent.events += events
        waiting[h] = [
            (e["prediction_id"], labels[e["prediction_id"]]) for e in events if e["status"] == "ok"
        ]
        due = waiting.pop(h - LABEL_DELAY, [])
        if due:
            body = {"actuals": [{"prediction_id": p, "label": lab} for p, lab in due]}
            r = client.post(f"/v1/models/{MODEL}/actuals", json=body)
            assert r.status_code == 200, r.text
            sent.labels += len(due)
    bad = dict(sent.events[0], prediction_id="rejected-1")
    bad["features"] = dict(bad["features"], age=XSS_VALUE)
    r = post_json(client, f"/v1/models/{MODEL}/predictions", {"events": [bad]})
    assert r.status_code == 422, r.text
    sent.rejected = 1
    _fill_hostile_model(client, sent.first_hour + (hours - 1) * 3600)
    return sent


def _fill_hostile_model(client: Any, hour: int) -> None:
    """A model whose feature name is HTML, with one window of events."""
    rng = np.random.default_rng(3)
    table = pa.table({XSS_FEATURE: rng.normal(0, 1, 500), "pred": rng.choice(["a", "b"], 500)})
    register(client, HOSTILE_MODEL, table, "prediction=pred")
    events = [
        {
            "prediction_id": f"h{i}",
            "timestamp": hour + i,
            "features": {XSS_FEATURE: float(rng.normal(0.5, 1))},
            "prediction": "a",
        }
        for i in range(80)
    ]
    r = client.post(f"/v1/models/{HOSTILE_MODEL}/predictions", json={"events": events})
    assert r.status_code == 200 and r.json()["accepted"] == 80, r.text


@dataclass
class ReplayPlan:
    """Hours of simulated production traffic in the past: the inputs drift gradually from
    ``drift_start`` of the way in, the relation between inputs and churn changes from
    ``concept_start``; about 1 % of requests fail."""

    hours: int = 48
    events_per_hour: int = 400
    label_delay_hours: int = 6
    drift_start: float = 0.3
    concept_start: float = 0.55

    def drift(self, h: int) -> float:
        x = (h / max(self.hours - 1, 1) - self.drift_start) / (1 - self.drift_start)
        return float(np.clip(x, 0.0, 1.0))

    def concept(self, h: int) -> float:
        return 1.0 if h / max(self.hours - 1, 1) >= self.concept_start else 0.0


def hour_events(
    plan: ReplayPlan, h: int, start: float, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """One hour of the replay as prediction events with their labels."""
    table = _frame(
        rng,
        plan.events_per_hour,
        datetime.fromtimestamp(start, UTC).replace(tzinfo=None),
        drifted=plan.drift(h),
        concept=plan.concept(h),
        first_id=h * plan.events_per_hour,
        span_seconds=3600,
    )
    rows = table.to_pylist()
    latency = rng.lognormal(np.log(18 + 10 * plan.drift(h)), 0.4, len(rows))
    failed = rng.random(len(rows)) < 0.01
    events = []
    for row, ms, fail in zip(rows, latency, failed, strict=True):
        stamp = row["event_time"].replace(tzinfo=UTC).timestamp()
        events.append(
            {
                "prediction_id": f"{row['customer_id']}-{h}",
                "timestamp": stamp,
                "features": {k: row[k] for k in FEATURES},
                "prediction": None if fail else row["churn_predicted"],
                "latency_ms": float(ms) * (4 if fail else 1),
                "status": "error" if fail else "ok",
                "error": "TimeoutError: feature store did not answer" if fail else None,
                "label": row["churned"],
                "scores": None if fail else {"1": float(row["churn_score"])},
            }
        )
    return events


@dataclass
class Filled:
    """An in-process app on a filled database, and what was sent to it."""

    app: Any
    client: Any
    sent: Sent
    backend: str


def settle(app: Any) -> None:
    """Process every logged batch and evaluate every closed window, in this thread (the
    app's own processor and evaluator loops are not started)."""
    from watchkeeper.ingest.processor import Processor

    processor = Processor(app.state.store, app.state.settings)
    while processor.run_once(limit=100):
        pass
    app.state.evaluator.run_once(time.time())
