"""Champion and challengers on the inference endpoints of a real server (both backends):
the shadow scores every answered request off the response path and its answers, paired with
the champion's by prediction id and the labels, give the verdict; a canary answers its share,
sticky by the entity key; ten promotions under continuous load fail or drop no request."""

from __future__ import annotations

import io
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.service.fixtures import Server, ServerFactory
from watchkeeper.promotion.router import bucket

pytest.importorskip("skops")

FEATURES = ["x1", "x2", "x3"]
SKOPS = "application/x-skops"


def data(rows: int, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(0, 1, (rows, 3)), 4)
    y = np.where(x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.6, rows) > 0, "yes", "no")
    return x, y


@pytest.fixture(scope="module")
def models() -> tuple[Any, Any]:
    """A good classifier and a poor one (trained on the labels in reverse order)."""
    from sklearn.linear_model import LogisticRegression

    x, y = data(500, seed=0)
    return LogisticRegression().fit(x, y), LogisticRegression().fit(x, y[::-1])


@pytest.fixture(scope="module")
def api(module_server: ServerFactory, module_databases: Callable[[], str]) -> Iterator[Server]:
    yield module_server(module_databases(), env={"WATCHKEEPER_EVALUATION_INTERVAL_SECONDS": "0.3"})


def served_model(client: httpx.Client, champion: Any, challenger: Any) -> str:
    """A model with v1 (champion) and v2 registered beside it, each with its skops artifact."""
    import skops.io as sio

    model = f"promo-{secrets.token_hex(4)}"
    x, y = data(200, seed=1)
    table = pa.table({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "label": y, "pred": y})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    for version, clf in (("v1", champion), ("v2", challenger)):
        r = client.put(
            f"/v1/models/{model}/versions/{version}",
            params={"target": "label", "prediction": "pred", "champion": version == "v1"},
            content=buf.getvalue(),
            headers={"content-type": "application/vnd.apache.parquet"},
        )
        assert r.status_code == 201, r.text
        r = client.put(
            f"/v1/models/{model}/versions/{version}/artifact",
            content=sio.dumps(clf),
            headers={"content-type": SKOPS},
        )
        assert r.status_code == 200, r.text
    return model


def columns(x: np.ndarray[Any, Any]) -> dict[str, list[float]]:
    return {f: x[:, j].tolist() for j, f in enumerate(FEATURES)}


def test_the_shadow_is_paired_with_the_champion_on_the_same_labelled_requests(
    api: Server, models: tuple[Any, Any], wait_for: Callable[..., None]
) -> None:
    good, poor = models
    with api.client() as client:
        model = served_model(client, champion=poor, challenger=good)
        r = client.post(f"/v1/models/{model}/versions/v2/challenge", json={"mode": "shadow"})
        assert r.status_code == 200, r.text
        x, y = data(300, seed=5)
        ids: list[str] = []
        for start in range(0, 300, 30):  # ten requests of 30 rows
            r = client.post(
                f"/v1/models/{model}/predict", json={"columns": columns(x[start : start + 30])}
            )
            assert r.status_code == 200 and r.json()["version"] == "v1", r.text
            assert r.json()["predictions"] == poor.predict(x[start : start + 30]).tolist()
            ids += r.json()["prediction_ids"]
        wait_for(
            lambda: client.get(f"/v1/models/{model}/versions").json()["shadow"]["scored"] == 10,
            "the shadow to score the ten requests",
        )
        assert client.get(f"/v1/models/{model}/versions").json()["shadow"]["dropped"] == 0
        wait_for(
            lambda: client.get(f"/v1/models/{model}").json()["events_total"] == 300,
            "the champion's 300 prediction events",
        )
        actuals = [{"prediction_id": i, "label": str(v)} for i, v in zip(ids, y, strict=True)]
        r = client.post(f"/v1/models/{model}/actuals", json={"actuals": actuals})
        assert r.status_code == 200 and r.json()["matched"] == 300, r.text
        r = client.put(
            f"/v1/models/{model}/promotion-policy", json={"min_labelled": 200, "mode": "auto"}
        )
        assert r.status_code == 200, r.text
        wait_for(lambda: client.get(f"/v1/models/{model}/verdicts").json()["verdicts"], "a verdict")
        verdict = client.get(f"/v1/models/{model}/verdicts").json()["verdicts"][0]
        e = verdict["evidence"]
        # the oracle: each model's own predictions of the same rows against the labels
        assert e["n"] == 300
        assert e["champion"] == pytest.approx(np.mean(poor.predict(x) == y))
        assert e["challenger"] == pytest.approx(np.mean(good.predict(x) == y))
        assert verdict["decision"] == "promote" and e["p_value"] < 0.05
        assert client.get(f"/v1/models/{model}").json()["champion"] == "v2"
        r = client.post(f"/v1/models/{model}/predict", json={"columns": columns(x[:5])})
        assert r.json()["version"] == "v2"
        assert r.json()["predictions"] == good.predict(x[:5]).tolist()
        metrics = client.get("/metrics").text
        assert f'watchkeeper_shadow_scored_total{{model="{model}"}} 10.0' in metrics
        kinds = [e["kind"] for e in client.get(f"/v1/models/{model}/history").json()["events"]]
        assert kinds[:3] == ["promoted", "verdict", "shadow_started"]


def test_a_canary_answers_its_share_sticky_by_the_entity_key(
    api: Server, models: tuple[Any, Any]
) -> None:
    good, poor = models
    with api.client() as client:
        model = served_model(client, champion=good, challenger=poor)
        r = client.post(
            f"/v1/models/{model}/versions/v2/challenge",
            json={"mode": "canary", "share": 0.3, "entity_key": "x1"},
        )
        assert r.status_code == 200, r.text
        x, _ = data(60, seed=9)
        answered: dict[float, set[str]] = {}
        for _round in range(2):
            for row in x:
                r = client.post(f"/v1/models/{model}/predict", json={"columns": columns(row[None])})
                assert r.status_code == 200, r.text
                answered.setdefault(float(row[0]), set()).add(r.json()["version"])
        assert all(len(v) == 1 for v in answered.values()), "an entity changed version"
        # the oracle: the same hash of the model and the entity's value
        expected = {k: "v2" if bucket(model, str(k)) < 0.3 else "v1" for k in answered}
        assert {k: v.pop() for k, v in answered.items()} == expected
        assert 5 < list(expected.values()).count("v2") < 35


def test_ten_promotions_under_continuous_load_fail_or_drop_no_request(
    api: Server, models: tuple[Any, Any], wait_for: Callable[..., None]
) -> None:
    good, poor = models
    with api.client() as client:
        model = served_model(client, champion=good, challenger=poor)
    stop = threading.Event()
    answers: list[tuple[int, str]] = []
    x, _ = data(4, seed=3)

    def load() -> None:
        with api.client() as c:
            while not stop.is_set():
                r = c.post(f"/v1/models/{model}/predict", json={"columns": columns(x)})
                answers.append((r.status_code, r.json().get("version", r.text)))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for th in threads:
        th.start()
    try:
        with api.client() as client:
            for i in range(10):
                version = "v2" if i % 2 == 0 else "v1"
                r = client.post(
                    f"/v1/models/{model}/versions/{version}/challenge", json={"mode": "shadow"}
                )
                assert r.status_code == 200, r.text
                r = client.post(f"/v1/models/{model}/promote", json={"version": version})
                assert r.status_code == 200 and r.json()["champion"] == version, r.text
                seen = len(answers)
                wait_for(lambda n=seen: len(answers) > n + 4, "requests after the swap")
    finally:
        stop.set()
        for th in threads:
            th.join()
    failed = [a for a in answers if a[0] != 200]
    assert not failed, failed[:5]
    assert {v for _, v in answers} == {"v1", "v2"}
    with api.client() as client:
        wait_for(
            lambda: client.get(f"/v1/models/{model}").json()["events_total"] == 4 * len(answers),
            "every answered row stored as an event",
        )
        promoted = [
            e for e in client.get(f"/v1/models/{model}/history").json()["events"]
            if e["kind"] == "promoted"
        ]  # fmt: skip
        assert len(promoted) == 10
