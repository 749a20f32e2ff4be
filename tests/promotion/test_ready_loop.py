"""Done when (manual policy, a real server on both backends): a challenger in shadow that the
verdict finds better is not promoted; a ``ready_to_promote`` alert reaches a real webhook
receiver on loopback once, naming both versions, the evidence and how to promote; the admin
promotes it through the API; the alert resolves and the receiver gets the resolution."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.promotion.test_loop import Traffic, world
from tests.service.fixtures import ServerFactory

pytest.importorskip("skops")
WINDOW = 4  # seconds


@pytest.mark.slow
def test_a_ready_challenger_is_announced_once_and_resolved_by_the_admins_promotion(
    database_url: str,
    server: ServerFactory,
    wait_for: Callable[..., None],
    tmp_path: Path,
    webhook_receiver: Any,
    request: pytest.FixtureRequest,
) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    settings = {
        "evaluation_interval_seconds": 0.3,
        "notifiers": {"hook": {"type": "webhook", "url": webhook_receiver.url}},
        "promotion_policies": {"churn": {"min_labelled": 100, "mode": "manual"}},
    }
    path = tmp_path / "watchkeeper.yaml"
    path.write_text(yaml.safe_dump(settings))
    srv = server(database_url, env={"WATCHKEEPER_CONFIG": str(path)})
    client = srv.client()
    request.addfinalizer(client.close)
    rng = np.random.default_rng(0)
    for version, changed in (("v1", False), ("v2", True)):
        x, y = world(400, rng, changed=changed)
        buf = io.BytesIO()
        pq.write_table(pa.table({"x1": x[:, 0], "x2": x[:, 1], "y": y, "p": y}), buf)
        r = client.put(
            f"/v1/models/churn/versions/{version}",
            params={"target": "y", "prediction": "p", "window_seconds": WINDOW,
                    "champion": str(version == "v1").lower()},
            content=buf.getvalue(),
            headers={"content-type": "application/vnd.apache.parquet"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        r = client.put(
            f"/v1/models/churn/versions/{version}/artifact",
            content=sio.dumps(LogisticRegression().fit(x, y)),
            headers={"content-type": "application/x-skops"},
        )
        assert r.status_code == 200, r.text
    r = client.post("/v1/models/churn/versions/v2/challenge", json={"mode": "shadow"})
    assert r.status_code == 200, r.text

    traffic = Traffic(client)
    deadline = time.monotonic() + 60
    while not webhook_receiver.delivered:
        assert time.monotonic() < deadline, (
            client.get("/v1/models/churn/verdicts").json(),
            srv.log_tail(3000),
        )
        traffic.send(50, changed=True)
        time.sleep(0.5)
    [verdict, *_] = client.get("/v1/models/churn/verdicts").json()["verdicts"][::-1]
    assert verdict["decision"] == "ready"
    assert client.get("/v1/models/churn").json()["champion"] == "v1"  # not promoted
    traffic.send(200, changed=True)  # more looks: ready again, no second notice
    time.sleep(2)
    [sent] = webhook_receiver.delivered
    alert = sent.json()["alert"]
    assert (alert["monitor"], alert["state"], alert["target"]) == (
        "ready_to_promote",
        "firing",
        "v2",
    )
    d = alert["detail"]
    assert (d["champion"], d["challenger"], d["verdict_id"]) == ("v1", "v2", verdict["id"])
    assert d["n"] == verdict["evidence"]["n"] and d["p_value"] == verdict["evidence"]["p_value"]
    assert "watchkeeper promote churn v2" in alert["summary"]
    assert "POST /v1/models/churn/promote" in alert["summary"]

    r = client.post("/v1/models/churn/promote", json={"version": "v2"})
    assert r.status_code == 200, r.text
    wait_for(lambda: len(webhook_receiver.delivered) >= 2, "the resolution", timeout=30)
    resolved = webhook_receiver.delivered[1].json()["alert"]
    assert (resolved["id"], resolved["state"]) == (alert["id"], "resolved")
    assert "v2 was promoted" in resolved["summary"]
    [listed] = client.get("/v1/alerts").json()["alerts"]
    assert listed["state"] == "resolved"
    time.sleep(1)
    assert len(webhook_receiver.delivered) == 2
