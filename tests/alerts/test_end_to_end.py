"""Done when: a real server, a stream whose accuracy falls below the threshold, exactly one alert,
delivered to a webhook and an email receiver, resolved when accuracy recovers (resolution
delivered too), and the retraining command run once with a Parquet file of the labelled window.

``watchkeeper serve`` runs in a subprocess with a settings file naming the monitor and the two
notifiers (B's loopback receivers); windows are one minute long and lie in the past, so each is
closed and evaluated as soon as its events and labels are in. Every figure the test checks is
computed here from the events it sent.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

WINDOW = 60
EVENTS = 200  # per window
LABELLED = 180  # of which get a label
SECRET = "e2e-secret"
RECORDER = """
import json, os, sys
import pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
with open(sys.argv[2], "a") as fh:
    fh.write(json.dumps({
        "argv": sys.argv[1:],
        "env": {k: v for k, v in os.environ.items() if k.startswith("WATCHKEEPER_")},
        "rows": table.to_pylist(),
    }) + "\\n")
print("retrained on", table.num_rows, "rows")
"""


def settings_file(tmp_path: Path, webhook: Any, smtp: Any) -> tuple[Path, Path]:
    script, record = tmp_path / "retrain.py", tmp_path / "retrain-runs.jsonl"
    script.write_text(RECORDER)
    settings = {
        "evaluation_interval_seconds": 0.5,
        "delivery_backoff_seconds": 0.2,
        "monitors": [
            {
                "name": "accuracy-floor",
                "model": "churn",
                "metric": "accuracy",
                "condition": "<= 0.85",
                "severity": "critical",
                "min_samples": 50,
                "for_windows": 2,
                "notify": ["ops", "mail"],
                "actions": [
                    {
                        "type": "retrain",
                        "command": [
                            sys.executable,
                            str(script),
                            "{dataset}",
                            str(record),
                            "{model}",
                            "{version}",
                            "{alert}",
                        ],
                        "timeout": 120,
                    }
                ],
            }
        ],
        "notifiers": {
            "ops": {"type": "webhook", "url": webhook.url, "secret": SECRET},
            "mail": {
                "type": "email",
                "host": smtp.host,
                "port": smtp.port,
                "from": "watchkeeper@test",
                "to": ["ml-team@test"],
            },
        },
    }
    path = tmp_path / "watchkeeper.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path, record


def reference() -> bytes:
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 2, n)
    table = pa.table(
        {"x": rng.normal(0, 1, n), "plan": rng.choice(["a", "b", "c"], n), "y": y, "p": y}
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


class Stream:
    """Events and labels of one-minute windows, with a chosen accuracy per window."""

    def __init__(self, client: httpx.Client, base: int) -> None:
        self.client, self.base = client, base
        self.sent: dict[int, dict[str, dict[str, Any]]] = {}  # window → id → event + label
        self.rng = np.random.default_rng(42)

    def send(self, windows: dict[int, float]) -> None:
        events, labels = [], []
        for i, accuracy in windows.items():
            ws = self.base + i * WINDOW
            right = round(accuracy * LABELLED)
            self.sent[ws] = {}
            for k in range(EVENTS):
                pid = f"w{i}-{k}"
                y = int(self.rng.integers(0, 2))
                pred = y if (k >= LABELLED or k < right) else 1 - y
                event = {
                    "prediction_id": pid,
                    "timestamp": ws + k * (WINDOW / EVENTS),
                    "features": {
                        "x": round(float(self.rng.normal()), 6),
                        "plan": str(self.rng.choice(["a", "b", "c"])),
                    },
                    "prediction": pred,
                }
                events.append(event)
                self.sent[ws][pid] = {**event, "label": y if k < LABELLED else None}
                if k < LABELLED:
                    labels.append({"prediction_id": pid, "label": y})
        r = self.client.post("/v1/models/churn/predictions", json={"events": events})
        assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
        r = self.client.post("/v1/models/churn/actuals", json={"actuals": labels})
        assert r.status_code == 200 and r.json()["matched"] == len(labels), r.text


def firing_gauge(client: httpx.Client) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name == "watchkeeper_alerts_firing":
            return sum(
                s.value
                for s in family.samples
                if s.labels == {"model": "churn", "severity": "critical"}
            )
    raise AssertionError("no watchkeeper_alerts_firing family in /metrics")


def test_accuracy_drop_fires_once_notifies_retrains_and_resolves(
    database_url: str,
    server: Any,
    wait_for: Any,
    webhook_receiver: Any,
    smtp_receiver: Any,
    tmp_path: Path,
) -> None:
    config, record = settings_file(tmp_path, webhook_receiver, smtp_receiver)
    srv = server(database_url, env={"WATCHKEEPER_CONFIG": str(config)})
    client = srv.client()
    r = client.put(
        "/v1/models/churn/versions/v1",
        params={"target": "y", "prediction": "p", "window_seconds": WINDOW},
        content=reference(),
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    assert r.status_code == 201, r.text
    base = int(time.time() // WINDOW * WINDOW) - 30 * WINDOW  # closed windows, all in the past
    stream = Stream(client, base)

    def verdict() -> dict[str, Any]:
        targets = client.get("/v1/monitors/accuracy-floor").json()["targets"]
        return targets[0] if targets else {}

    def alerts(**query: str) -> list[dict[str, Any]]:
        return list(client.get("/v1/alerts", params=query).json()["alerts"])

    # phase 1: healthy windows
    stream.send({0: 0.95, 1: 0.95})
    wait_for(
        lambda: verdict().get("window_start") == base + WINDOW,
        "the healthy windows judged",
        timeout=60,
    )
    assert verdict()["breach"] is False and verdict()["value"] == pytest.approx(
        round(0.95 * LABELLED) / LABELLED
    )
    assert alerts() == []

    # phase 2: accuracy falls to 0.70 for two windows (for_windows: 2)
    stream.send({2: 0.70, 3: 0.70})
    wait_for(lambda: len(alerts(state="firing")) == 1, "the alert to fire", timeout=60)
    [alert] = alerts()
    expected = round(0.70 * LABELLED) / LABELLED
    assert (alert["monitor"], alert["model"], alert["version"], alert["severity"]) == (
        "accuracy-floor",
        "churn",
        "v1",
        "critical",
    )
    assert alert["value"] == pytest.approx(expected) and alert["sample_size"] == LABELLED
    assert alert["window_start"] == base + 3 * WINDOW and alert["window_seconds"] == WINDOW
    assert alert["condition"] == "<= 0.85" and alert["threshold"] == 0.85
    assert alert["summary"].startswith(f"accuracy {expected:.4g} <= 0.85 in window ") and alert[
        "summary"
    ].endswith(f"(n={LABELLED}) on churn v1")
    [hook] = webhook_receiver.wait_for(1, timeout=30)
    body = hook.json()
    assert body["alert"]["id"] == alert["id"] and body["alert"]["state"] == "firing"
    signed = hook.header("X-Watchkeeper-Timestamp").encode() + b"." + hook.body
    assert (
        hook.header("X-Watchkeeper-Signature")
        == "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    )
    [mail] = smtp_receiver.wait_for(1, timeout=30)
    assert (
        mail["To"] == "ml-team@test"
        and "accuracy" in mail["Subject"]
        and "CRITICAL" in mail["Subject"]
    )
    assert firing_gauge(client) == 1

    wait_for(
        lambda: record.exists() and record.read_text().count("\n") >= 1,
        "the retraining command",
        timeout=60,
    )
    wait_for(
        lambda: client.get("/v1/retrain-jobs").json()["jobs"][0]["status"] == "succeeded",
        "the job to end",
        timeout=60,
    )
    [job] = client.get("/v1/retrain-jobs").json()["jobs"]
    job = client.get(f"/v1/retrain-jobs/{job['id']}").json()
    assert (job["alert_id"], job["model"], job["version"], job["exit_code"]) == (
        alert["id"],
        "churn",
        "v1",
        0,
    )
    assert job["window_start"] == base + 3 * WINDOW and job["rows"] == LABELLED
    assert job["duration"] > 0 and f"retrained on {LABELLED} rows" in job["log"]
    [run] = [json.loads(line) for line in record.read_text().splitlines()]
    assert run["argv"] == [job["dataset"], str(record), "churn", "v1", str(alert["id"])]
    assert run["env"]["WATCHKEEPER_DATASET"] == job["dataset"] and run["env"][
        "WATCHKEEPER_ALERT_ID"
    ] == str(alert["id"])
    sent = stream.sent[base + 3 * WINDOW]
    labelled = {pid: e for pid, e in sent.items() if e["label"] is not None}
    assert len(run["rows"]) == len(labelled) == LABELLED
    for row in run["rows"]:  # features, prediction and label of exactly the labelled window
        event = labelled[row["prediction_id"]]
        assert row["x"] == event["features"]["x"] and row["plan"] == event["features"]["plan"]
        assert str(row["prediction"]) == str(event["prediction"]) and str(row["label"]) == str(
            event["label"]
        )
    assert sum(
        str(r["prediction"]) == str(r["label"]) for r in run["rows"]
    ) / LABELLED == pytest.approx(expected)

    # phase 3: accuracy recovers
    stream.send({4: 0.96})
    wait_for(lambda: alerts()[0]["state"] == "resolved", "the alert to resolve", timeout=60)
    requests = webhook_receiver.wait_for(2, timeout=30)
    assert [r.json()["alert"]["state"] for r in requests] == ["firing", "resolved"]
    assert requests[1].json()["alert"]["summary"].startswith("resolved: accuracy 0.96")
    assert len(smtp_receiver.wait_for(2, timeout=30)) == 2
    assert firing_gauge(client) == 0
    time.sleep(2)  # a few more evaluator passes: nothing more happens
    [alert] = alerts()
    assert alert["state"] == "resolved"
    assert len(webhook_receiver.requests) == 2 and len(smtp_receiver.messages) == 2
    assert record.read_text().count("\n") == 1
    shown = client.get(f"/v1/alerts/{alert['id']}").json()
    assert [h["state"] for h in shown["history"]] == ["pending", "firing", "resolved"]
    assert {(d["transition"], d["notifier"], d["status"]) for d in shown["deliveries"]} == {
        ("firing", "ops", "sent"),
        ("firing", "mail", "sent"),
        ("resolved", "ops", "sent"),
        ("resolved", "mail", "sent"),
    }
    shown_cli = cli_show(srv.url, alert["id"])
    assert alert["summary"] in shown_cli and "firing" in shown_cli and "resolved" in shown_cli
    assert (
        "delivery firing → ops: sent" in shown_cli and "delivery resolved → mail: sent" in shown_cli
    )
    assert f"retrain job {job['id']}: succeeded" in shown_cli

    # the model's history: each step once, in the order it happened
    events = client.get("/v1/models/churn/history").json()["events"]
    kinds = [e["kind"] for e in reversed(events)]  # oldest first
    assert sorted(kinds) == sorted(
        [
            "version_registered",
            "alert_pending",
            "alert_firing",
            "action_queued",
            "action_started",
            "action_succeeded",
            "alert_resolved",
        ]
    ), kinds
    assert kinds[0] == "version_registered" and kinds[-1] == "alert_resolved"
    order = {kind: i for i, kind in enumerate(kinds)}
    assert order["alert_pending"] < order["alert_firing"] < order["action_started"]
    assert order["action_queued"] < order["action_started"] < order["action_succeeded"]
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)
    ended = next(e for e in events if e["kind"] == "action_succeeded")
    assert ended["detail"]["job_id"] == job["id"] and ended["detail"]["exit_code"] == 0
    firing = next(e for e in events if e["kind"] == "alert_firing")
    assert firing["detail"]["alert_id"] == alert["id"] and firing["version"] == "v1"
    after = client.get("/v1/models/churn/history", params={"since": firing["at"]}).json()
    assert after["events"] == [e for e in events if e["at"] >= firing["at"]]
    before = client.get("/v1/models/churn/history", params={"until": firing["at"]}).json()
    assert before["events"] == [e for e in events if e["at"] < firing["at"]]
    only = client.get("/v1/models/churn/history", params={"kind": "alert_firing"}).json()
    assert [e["kind"] for e in only["events"]] == ["alert_firing"]
    r = client.get("/v1/models/churn/history", params={"kind": "alert_flaring"})
    assert r.status_code == 422 and "kind" in r.text, r.text
    assert client.get("/v1/models/nope/history").status_code == 404
    shown_cli = cli_history(srv.url)
    assert "alert_firing" in shown_cli and "action_succeeded" in shown_cli
    client.close()


def cli_history(url: str) -> str:
    """``watchkeeper history churn`` as a user runs it."""
    return cli_run(url, "history", "churn")


def cli_show(url: str, alert_id: int) -> str:
    """``watchkeeper alerts show`` as a user runs it."""
    return cli_run(url, "alerts", "show", str(alert_id))


def cli_run(url: str, *args: str) -> str:
    import os
    import subprocess

    exe = Path(sys.executable).with_name("watchkeeper")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "watchkeeper.cli"]
    env = {**os.environ, "COLUMNS": "250", "WATCHKEEPER_URL": url}
    done = subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
