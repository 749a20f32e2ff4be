"""Done when: the whole loop on a real server (both backends). The champion is served through
watchkeeper; the world changes and its accuracy falls; the accuracy monitor fires; the
retraining command (a real scikit-learn script) trains on the exported window and writes a
skops model to ``{output}``; that model becomes a version in shadow; labelled live traffic
gives a paired verdict; the policy promotes it; the next windows' accuracy recovers; and the
model's history lists each step once, in order.

Windows are a few seconds long (the inference endpoint stamps events with the time they are
scored), so each phase waits for its window to close and be evaluated.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.service.fixtures import ServerFactory

pytest.importorskip("skops")

WINDOW = 4  # seconds
TRAIN = """
import sys
import pyarrow.parquet as pq
import skops.io as sio
from sklearn.linear_model import LogisticRegression

table = pq.read_table(sys.argv[1]).to_pandas()
model = LogisticRegression().fit(table[["x1", "x2"]].to_numpy(), table["label"].astype(str))
sio.dump(model, sys.argv[2])
print("trained on", len(table), "rows")
"""


def world(n: int, rng: np.random.Generator, *, changed: bool) -> tuple[Any, Any]:
    """Rows and their labels: before the change the label follows x1, after it x2."""
    x = np.round(rng.normal(0, 1, (n, 2)), 4)
    y = np.where(x[:, 1 if changed else 0] > 0, "yes", "no")
    return x, y


def settings_file(tmp_path: Path) -> Path:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    settings = {
        "evaluation_interval_seconds": 0.3,
        "monitors": [
            {
                "name": "accuracy-floor",
                "model": "churn",
                "metric": "accuracy",
                "condition": "<= 0.8",
                "min_samples": 40,
                "for_windows": 1,
                "actions": [
                    {
                        "type": "retrain",
                        "command": [sys.executable, str(script), "{dataset}", "{output}"],
                        "timeout": 120,
                    }
                ],
            }
        ],
        "promotion_policies": {"churn": {"min_labelled": 100, "mode": "auto"}},
    }
    path = tmp_path / "watchkeeper.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


class Traffic:
    """Requests to the inference endpoint and the labels of their answers."""

    def __init__(self, client: httpx.Client) -> None:
        self.client, self.rng = client, np.random.default_rng(7)

    def send(self, n: int, *, changed: bool) -> list[str]:
        """``n`` rows in requests of 25, then their labels; the versions that answered."""
        versions = []
        for _ in range(n // 25):
            x, y = world(25, self.rng, changed=changed)
            r = self.client.post(
                "/v1/models/churn/predict",
                json={"columns": {"x1": x[:, 0].tolist(), "x2": x[:, 1].tolist()}},
            )
            assert r.status_code == 200, r.text
            versions.append(r.json()["version"])
            labels = [
                {"prediction_id": pid, "label": str(label)}
                for pid, label in zip(r.json()["prediction_ids"], y, strict=True)
            ]
            r = self.client.post("/v1/models/churn/actuals", json={"actuals": labels})
            assert r.status_code == 200, r.text
        return versions


def accuracy(client: httpx.Client, version: str) -> list[float]:
    r = client.get("/v1/models/churn/metrics", params={"metric": "accuracy", "version": version})
    assert r.status_code == 200, r.text
    return [p["value"] for p in r.json()["points"] if p["value"] is not None]


@pytest.mark.slow
def test_degradation_alert_retrain_shadow_verdict_promotion_recovery(
    database_url: str,
    server: ServerFactory,
    wait_for: Callable[..., None],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    srv = server(database_url, env={"WATCHKEEPER_CONFIG": str(settings_file(tmp_path))})
    client = srv.client()
    request.addfinalizer(client.close)  # closed even when an assertion fails
    rng = np.random.default_rng(0)
    x, y = world(400, rng, changed=False)
    buf = io.BytesIO()
    pq.write_table(pa.table({"x1": x[:, 0], "x2": x[:, 1], "y": y, "p": y}), buf)
    r = client.put(
        "/v1/models/churn/versions/v1",
        params={"target": "y", "prediction": "p", "window_seconds": WINDOW},
        content=buf.getvalue(),
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    assert r.status_code == 201, r.text
    champion = LogisticRegression().fit(x, y)
    r = client.put(
        "/v1/models/churn/versions/v1/artifact",
        content=sio.dumps(champion),
        headers={"content-type": "application/x-skops"},
    )
    assert r.status_code == 200, r.text
    traffic = Traffic(client)

    # the world changes: the champion's accuracy falls, the monitor fires, the job retrains
    assert set(traffic.send(200, changed=True)) == {"v1"}
    wait_for(lambda: client.get("/v1/alerts").json()["alerts"], "the alert", timeout=60)

    def challengers() -> list[dict[str, Any]]:
        versions = client.get("/v1/models/churn/versions").json()["versions"]
        return [v for v in versions if v["state"] == "challenger"]

    wait_for(challengers, "the retrained model in shadow", timeout=90)
    # the job ends once its model is in shadow: wait for its end, not only for the shadow
    wait_for(
        lambda: client.get("/v1/retrain-jobs").json()["jobs"][0]["status"] != "running",
        "the retraining job to end",
        timeout=60,
    )
    [job] = client.get("/v1/retrain-jobs").json()["jobs"]
    [shadow] = challengers()
    assert shadow["version"] == f"retrain-{job['id']}" and shadow["mode"] == "shadow"
    assert job["status"] == "succeeded", job
    log = client.get(f"/v1/retrain-jobs/{job['id']}").json()["log"]
    assert f"registered job-{job['id']}.model (skops) as version {shadow['version']}" in log
    assert max(accuracy(client, "v1")) <= 0.8

    # labelled live traffic: the champion answers, the shadow scores the same requests
    deadline = time.monotonic() + 40
    while client.get("/v1/models/churn").json()["champion"] == "v1":
        assert time.monotonic() < deadline, (
            "no promotion within 40 s",
            client.get("/v1/models/churn/versions").json(),
            client.get("/v1/models/churn/promotion-policy").json(),
            srv.log_tail(3000),
        )
        traffic.send(50, changed=True)
        time.sleep(0.5)
    [verdict] = client.get("/v1/models/churn/verdicts").json()["verdicts"]
    e = verdict["evidence"]
    assert verdict["decision"] == "promote" and verdict["challenger"] == shadow["version"]
    assert e["method"].startswith("mcnemar") and e["n"] >= 100 and e["p_value"] < 0.05
    assert e["challenger"] > 0.9 and e["champion"] < 0.7

    # the promoted model answers, and the next windows' accuracy recovers
    assert set(traffic.send(150, changed=True)) == {shadow["version"]}
    wait_for(
        lambda: accuracy(client, shadow["version"]),
        "a window of the new champion evaluated",
        timeout=60,
    )
    assert min(accuracy(client, shadow["version"])) > 0.9

    events = client.get("/v1/models/churn/history").json()["events"]
    kinds = [e["kind"] for e in reversed(events)]  # oldest first
    # the job ends once the model it wrote is registered and in shadow
    steps = ["alert_firing", "action_started", "shadow_started", "action_succeeded", "verdict",
             "promoted"]  # fmt: skip
    for kind in steps:
        assert kinds.count(kind) == 1, (kind, kinds)
    assert [k for k in kinds if k in steps] == steps
    assert kinds.count("version_registered") == 2
    retrained = next(e for e in events if e["kind"] == "version_registered")
    assert retrained["version"] == shadow["version"]
    assert kinds.index("action_started") < len(kinds) - 1 - events.index(retrained)
    promoted = next(e for e in events if e["kind"] == "promoted")
    assert promoted["detail"]["verdict_id"] == verdict["id"]
    assert promoted["detail"]["previous"] == "v1"
