"""The CloudEvents target, fed what serving frameworks' request loggers really send: KServe's
logger (V1 and Open Inference Protocol v2 payloads, binary content mode), Seldon Core v1's
payload logger (its own protocol, joined by ``Ce-Requestid``) and a structured-mode event.
Each pair becomes prediction events in the lake, with ids a label can later join on."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]


@pytest.fixture(scope="module")
def srv(module_server: Any, module_databases: Callable[[], str]) -> Iterator[Any]:
    yield module_server(module_databases())


@pytest.fixture
def client(srv: Any) -> Iterator[httpx.Client]:
    with srv.client() as c:
        yield c


def iris_reference(rows: int = 300) -> pa.Table:
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {
        name: rng.normal(mu, 0.5, rows)
        for name, mu in zip(FEATURES, [5.8, 3.0, 3.7, 1.2], strict=True)
    }
    columns["pred"] = rng.integers(0, 3, rows)
    return pa.table(columns)


@pytest.fixture
def model(client: httpx.Client, register: Callable[..., str]) -> str:
    import io

    import pyarrow.parquet as pq

    name = f"iris-{uuid.uuid4().hex[:6]}"
    buf = io.BytesIO()
    pq.write_table(iris_reference(), buf)
    r = client.put(
        f"/v1/models/{name}/versions/v1",
        params={"prediction": "pred"},
        content=buf.getvalue(),
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    assert r.status_code == 201, r.text
    return name


def kserve_headers(kind: str, event_id: str, service: str, when: str) -> dict[str, str]:
    """The headers KServe's agent sets on a logged request or response (binary mode)."""
    return {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": f"org.kubeflow.serving.inference.{kind}",
        "ce-source": f"http://localhost:9081/v1/models/{service}:predict",
        "ce-time": when,
        "ce-inferenceservicename": service,
        "ce-namespace": "default",
        "ce-component": "predictor",
        "ce-endpoint": "default",
        "ce-metadata": json.dumps({"X-Request-Id": [event_id]}),
        "ce-recordedtime": when,
    }


def stored(srv: Any, client: httpx.Client, model: str, n: int, wait_for: Any) -> pa.Table:
    wait_for(
        lambda: (
            client.get(f"/v1/models/{model}").json()["events_pending"] == 0
            and client.get(f"/v1/models/{model}").json()["events_total"] >= n
        ),
        f"{n} events of {model} processed",
    )
    files = sorted(Path(srv.lake_dir).rglob("*.parquet"))
    table = ds.dataset([str(f) for f in files if f"model={model}" in str(f)]).to_table()
    return table.sort_by("prediction_id")


def test_kserve_v1_pair(srv: Any, client: httpx.Client, model: str, wait_for: Any) -> None:
    event_id = str(uuid.uuid4())
    request = {"instances": ROWS}
    response = {"predictions": [1, 2]}
    r = client.post(
        "/v1/cloudevents",
        params={"model": model},
        content=json.dumps(request),
        headers=kserve_headers("request", event_id, "sklearn-iris", "2026-12-04T10:00:00.000Z"),
    )
    assert r.status_code == 200 and r.json()["status"] == "waiting", r.text
    r = client.post(
        "/v1/cloudevents",
        params={"model": model},
        content=json.dumps(response),
        headers=kserve_headers("response", event_id, "sklearn-iris", "2026-12-04T10:00:00.042Z"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "joined" and body["accepted"] == 2 and body["rejected"] == 0, body

    table = stored(srv, client, model, 2, wait_for)
    assert table.column("prediction_id").to_pylist() == [f"{event_id}-item-0", f"{event_id}-item-1"]
    for i, name in enumerate(FEATURES):
        assert table.column(name).to_pylist() == [ROWS[0][i], ROWS[1][i]]
    assert table.column("latency_ms").to_pylist() == pytest.approx([42.0, 42.0], abs=1e-3)
    assert [str(v) for v in table.column("pred").to_pylist()] == ["1", "2"]


def test_kserve_open_inference_protocol_v2_pair(
    srv: Any, client: httpx.Client, model: str, wait_for: Any
) -> None:
    event_id = str(uuid.uuid4())
    request = {
        "id": event_id,
        "inputs": [
            {"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": [*ROWS[0], *ROWS[1]]}
        ],
    }
    response = {
        "model_name": "sklearn-iris",
        "model_version": None,
        "id": event_id,
        "parameters": None,
        "outputs": [{"name": "output-0", "shape": [2], "datatype": "INT32", "data": [1, 0]}],
    }
    for kind, payload, when in (
        ("request", request, "2026-12-04T10:00:01Z"),
        ("response", response, "2026-12-04T10:00:01.010Z"),
    ):
        r = client.post(
            "/v1/cloudevents",
            content=json.dumps(payload),
            headers=kserve_headers(kind, event_id, model, when),  # the model from the header
        )
        assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2, r.text
    table = stored(srv, client, model, 2, wait_for)
    assert table.column("sepal_length").to_pylist() == [6.8, 6.0]
    assert table.column("petal_width").to_pylist() == pytest.approx([1.4, 1.6])


def test_open_inference_protocol_v2_named_columns(
    srv: Any, client: httpx.Client, model: str, wait_for: Any
) -> None:
    """MLServer's pandas codec sends one tensor per column."""
    event_id = str(uuid.uuid4())
    request = {
        "inputs": [
            {"name": name, "shape": [2, 1], "datatype": "FP64", "data": [ROWS[0][i], ROWS[1][i]]}
            for i, name in enumerate(FEATURES)
        ]
    }
    response = {
        "outputs": [{"name": "predict", "shape": [2, 1], "datatype": "INT64", "data": [2, 2]}]
    }
    for kind, payload in (("request", request), ("response", response)):
        r = client.post(
            "/v1/cloudevents",
            params={"model": model},
            content=json.dumps(payload),
            headers=kserve_headers(kind, event_id, "mlserver-iris", "2026-12-04T10:00:02Z"),
        )
        assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2, r.text
    table = stored(srv, client, model, 2, wait_for)
    assert table.column("sepal_width").to_pylist() == [2.8, 3.4]


def seldon_headers(kind: str, request_id: str, deployment: str) -> dict[str, str]:
    """Seldon Core v1's payload logger: its own event type, a fresh ``Ce-Id`` per event and the
    request id (shared by request and response) in ``Ce-Requestid``."""
    return {
        "Content-Type": "application/json",
        "Ce-Specversion": "1.0",
        "Ce-Id": str(uuid.uuid4()),
        "Ce-Type": f"io.seldon.serving.inference.{kind}",
        "Ce-Source": "http://iris-default.seldon:8000/",
        "Ce-Requestid": request_id,
        "Ce-Modelid": "classifier",  # the graph node; the deployment names the model
        "Ce-Inferenceservicename": deployment,
        "Ce-Namespace": "seldon",
        "Ce-Endpoint": "default",
    }


def test_seldon_core_v1_protocol_pair(
    srv: Any, client: httpx.Client, model: str, wait_for: Any
) -> None:
    request_id = uuid.uuid4().hex
    request = {"data": {"names": FEATURES, "ndarray": ROWS}}
    response = {
        "data": {"names": ["t:0", "t:1", "t:2"], "ndarray": [[0.1, 0.7, 0.2], [0.05, 0.15, 0.8]]},
        "meta": {"requestPath": {"classifier": "seldonio/sklearnserver:1.18.0"}},
    }
    r = client.post(
        "/v1/cloudevents",
        content=json.dumps(request),
        headers=seldon_headers("request", request_id, model),
    )
    assert r.status_code == 200 and r.json()["status"] == "waiting", r.text
    r = client.post(
        "/v1/cloudevents",
        content=json.dumps(response),
        headers=seldon_headers("response", request_id, model),
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "joined" and r.json()["accepted"] == 2, r.text
    table = stored(srv, client, model, 2, wait_for)
    assert table.column("prediction_id").to_pylist() == [
        f"{request_id}-item-0",
        f"{request_id}-item-1",
    ]
    assert table.column("petal_length").to_pylist() == [4.8, 4.5]
    # the class of the highest probability (Seldon's t:1, t:2)
    assert [str(v) for v in table.column("pred").to_pylist()] == ["1", "2"]


def test_seldon_tensor_payload(srv: Any, client: httpx.Client, model: str, wait_for: Any) -> None:
    request_id = uuid.uuid4().hex
    request = {
        "data": {"names": FEATURES, "tensor": {"shape": [2, 4], "values": [*ROWS[0], *ROWS[1]]}}
    }
    response = {"data": {"names": [], "tensor": {"shape": [2], "values": [0, 1]}}}
    for kind, payload in (("request", request), ("response", response)):
        r = client.post(
            "/v1/cloudevents",
            content=json.dumps(payload),
            headers=seldon_headers(kind, request_id, model),
        )
        assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2, r.text
    table = stored(srv, client, model, 2, wait_for)
    assert [str(v) for v in table.column("pred").to_pylist()] == ["0", "1"]


def test_structured_mode_event(srv: Any, client: httpx.Client, model: str, wait_for: Any) -> None:
    event_id = str(uuid.uuid4())
    for kind, data in (("request", {"instances": [ROWS[0]]}), ("response", {"predictions": [0]})):
        envelope = {
            "specversion": "1.0",
            "id": event_id,
            "type": f"org.kubeflow.serving.inference.{kind}",
            "source": "http://localhost:9081/",
            "datacontenttype": "application/json",
            "inferenceservicename": model,
            "data": data,
        }
        r = client.post(
            "/v1/cloudevents",
            content=json.dumps(envelope),
            headers={"content-type": "application/cloudevents+json"},
        )
        assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1, r.text
    table = stored(srv, client, model, 1, wait_for)
    assert table.column("prediction_id").to_pylist() == [event_id]  # one instance: the event id


def test_a_cloudevent_that_is_not_one_is_400(client: httpx.Client, model: str) -> None:
    r = client.post(
        "/v1/cloudevents",
        params={"model": model},
        content=b"{}",
        headers={"content-type": "application/json", "ce-id": "x", "ce-type": "com.example.other"},
    )
    assert r.status_code == 400
    assert "expected *.inference.request or *.inference.response" in r.json()["error"]["message"]
