"""Serving models, monitored by construction, on a real server (both backends).

A scikit-learn classifier is trained here and exported to ONNX (skl2onnx), skops and pickle;
the served predictions and class probabilities are checked against the model's own
``predict``/``predict_proba`` on the same rows (the oracle). Requests are written as a KServe
v2 client sends them (the Open Inference Protocol's JSON); every scored row must be in the
store as a prediction event, and labels posted later with the returned ids must match.
"""

from __future__ import annotations

import io
import operator
import pickle
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.service.fixtures import Server, ServerFactory

pytest.importorskip("onnxruntime", reason="the serve extra: pip install -e '.[dev]'")
pytest.importorskip("skops")
pytest.importorskip("skl2onnx")

FEATURES = ["x1", "x2", "x3"]
ONNX = "application/onnx"


def training(rows: int = 300, seed: int = 0) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (rows, 3))
    y = np.where(
        x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2] + rng.normal(0, 0.5, rows) > 0, "yes", "no"
    )
    return x, y


@pytest.fixture(scope="module")
def clf() -> Any:
    from sklearn.linear_model import LogisticRegression

    x, y = training()
    return LogisticRegression().fit(x, y)


@pytest.fixture(scope="module")
def onnx_bytes(clf: Any) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(
        clf,
        initial_types=[("input", FloatTensorType([None, 3]))],
        options={id(clf): {"zipmap": False}},
        target_opset=15,
    )
    return bytes(onx.SerializeToString())


@pytest.fixture(scope="module")
def api(module_server: ServerFactory, module_databases: Callable[[], str]) -> Iterator[Server]:
    yield module_server(module_databases())


def register(client: httpx.Client, model: str | None = None) -> str:
    """A model whose reference has the three features, the label and the prediction."""
    model = model or f"srv-{secrets.token_hex(4)}"
    x, y = training(200, seed=1)
    table = pa.table({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "label": y, "pred": y})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    r = client.put(
        f"/v1/models/{model}/versions/v1",
        params={"target": "label", "prediction": "pred"},
        content=buf.getvalue(),
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    assert r.status_code == 201, r.text
    return model


def rows(n: int = 5, seed: int = 7) -> np.ndarray[Any, Any]:
    return np.round(np.random.default_rng(seed).normal(0, 1, (n, 3)), 4)


def put_artifact(client: httpx.Client, model: str, data: bytes, ct: str, **params: Any) -> Any:
    return client.put(
        f"/v1/models/{model}/versions/v1/artifact",
        content=data,
        headers={"content-type": ct},
        params=params,
    )


def check_oracle(clf: Any, x: np.ndarray[Any, Any], body: dict[str, Any], atol: float) -> None:
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["data"] == clf.predict(x).tolist()
    assert outputs["predict"]["shape"] == [len(x)] and outputs["predict"]["datatype"] == "BYTES"
    proba = outputs["predict_proba"]
    assert proba["shape"] == [len(x), 2] and proba["parameters"]["classes"] == ["no", "yes"]
    got = np.asarray(proba["data"]).reshape(len(x), 2)
    np.testing.assert_allclose(got, clf.predict_proba(x), atol=atol)


def test_onnx_served_through_the_open_inference_protocol_is_monitored(
    api: Server, clf: Any, onnx_bytes: bytes, wait_for: Callable[..., None]
) -> None:
    with api.client() as client:
        model = register(client)
        r = put_artifact(client, model, onnx_bytes, ONNX)
        assert r.status_code == 200, r.text
        meta = r.json()
        assert meta["format"] == "onnx" and meta["features"] == FEATURES
        assert meta["signature"]["classes"] == ["no", "yes"]

        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").status_code == 200
        ready = client.get(f"/v2/models/{model}/ready")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        metadata = client.get(f"/v2/models/{model}").json()
        assert metadata["name"] == model and metadata["versions"] == ["v1"]
        assert [i["name"] for i in metadata["inputs"]] == FEATURES
        assert metadata["platform"] == "onnxruntime_onnx"

        # a KServe v2 client: one 2-D FP32 tensor, nested data, a request id
        x = rows(5)
        request = {
            "id": "req-1",
            "inputs": [{"name": "input", "shape": [5, 3], "datatype": "FP32", "data": x.tolist()}],
        }
        r = client.post(f"/v2/models/{model}/infer", json=request)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == "req-1" and body["model_name"] == model
        assert body["model_version"] == "v1"
        check_oracle(clf, x.astype(np.float32).astype(np.float64), body, atol=1e-5)
        ids = body["parameters"]["prediction_ids"]
        assert len(set(ids)) == 5

        # one tensor per feature, flat data, the client's ids, only the predictions asked for
        x2 = rows(3, seed=8)
        request = {
            "inputs": [
                {"name": f, "shape": [3, 1], "datatype": "FP64", "data": x2[:, j].tolist()}
                for j, f in enumerate(FEATURES)
            ],
            "parameters": {"prediction_ids": ["a-1", "a-2", "a-3"]},
            "outputs": [{"name": "predict"}],
        }
        r = client.post(f"/v2/models/{model}/versions/v1/infer", json=request)
        assert r.status_code == 200, r.text
        assert [o["name"] for o in r.json()["outputs"]] == ["predict"]
        assert r.json()["outputs"][0]["data"] == clf.predict(x2.astype(np.float32)).tolist()
        assert r.json()["parameters"]["prediction_ids"] == ["a-1", "a-2", "a-3"]

        def stored() -> bool:
            return bool(client.get(f"/v1/models/{model}").json()["events_total"] == 8)

        wait_for(stored, "the 8 scored rows as prediction events")
        labels = [{"prediction_id": i, "label": "yes"} for i in [*ids, "a-1", "a-2", "a-3"]]
        r = client.post(f"/v1/models/{model}/actuals", json={"actuals": labels})
        assert r.status_code == 200, r.text
        assert r.json()["matched"] == 8 and r.json()["unmatched"] == 0


def test_skops_rows_and_columns_predict_match_the_model(api: Server, clf: Any) -> None:
    import skops.io as sio

    with api.client() as client:
        model = register(client)
        r = put_artifact(client, model, sio.dumps(clf), "application/x-skops")
        assert r.status_code == 200, r.text
        x = rows(4, seed=3)
        as_rows = [dict(zip(FEATURES, map(float, row), strict=True)) for row in x]
        r = client.post(f"/v1/models/{model}/predict", json={"rows": as_rows})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["version"] == "v1" and body["predictions"] == clf.predict(x).tolist()
        proba = clf.predict_proba(x)
        for row, p in zip(body["scores"], proba, strict=True):
            assert row == pytest.approx({"no": p[0], "yes": p[1]}, abs=1e-12)
        columns = {f: x[:, j].tolist() for j, f in enumerate(FEATURES)}
        r = client.post(
            f"/v1/models/{model}/predict",
            json={"columns": columns},
            headers={"x-prediction-ids": "c1,c2,c3,c4"},
        )
        assert r.json()["prediction_ids"] == ["c1", "c2", "c3", "c4"]
        assert r.json()["predictions"] == clf.predict(x).tolist()


def test_a_skops_file_with_an_untrusted_type_is_refused_until_trusted(api: Server) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x, y = training()
    pipe = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression()).fit(x, y)
    data = sio.dumps(pipe)
    with api.client() as client:
        model = register(client)
        r = put_artifact(client, model, data, "application/x-skops", features="x1,x2,x3")
        assert r.status_code == 400, r.text
        assert "_operator.neg" in r.json()["error"]["message"]
        r = put_artifact(
            client, model, data, "application/x-skops", features="x1,x2,x3", trusted="_operator.neg"
        )
        assert r.status_code == 200, r.text
        assert r.json()["trusted"] == ["_operator.neg"]
        x2 = rows(3)
        r = client.post(
            f"/v1/models/{model}/predict",
            json={"columns": {f: x2[:, j].tolist() for j, f in enumerate(FEATURES)}},
        )
        assert r.json()["predictions"] == pipe.predict(x2).tolist()


def test_a_pickle_is_refused_unless_trusted(api: Server, clf: Any) -> None:
    data = pickle.dumps(clf)
    with api.client() as client:
        model = register(client)
        for ct, fmt in (("application/octet-stream", "skops"), ("application/x-pickle", None)):
            r = put_artifact(client, model, data, ct, **({"format": fmt} if fmt else {}))
            assert r.status_code == 400, r.text
            assert "run code" in r.json()["error"]["message"]
        assert client.get(f"/v1/models/{model}/versions/v1/artifact").status_code == 404
        r = put_artifact(client, model, data, "application/x-pickle", trust_pickle="true")
        assert r.status_code == 200, r.text
        x = rows(2)
        r = client.post(
            f"/v1/models/{model}/predict",
            json={"rows": [dict(zip(FEATURES, map(float, row), strict=True)) for row in x]},
        )
        assert r.json()["predictions"] == clf.predict(x).tolist()


def test_inputs_that_fail_the_schema_and_a_model_that_fails_to_load_are_quarantined(
    api: Server, onnx_bytes: bytes
) -> None:
    with api.client() as client:
        model = register(client)
        # a model that takes an input the schema does not have: refused at attach time
        r = put_artifact(client, model, onnx_bytes, ONNX, features="x1,x2,nope")
        assert r.status_code == 400 and "['nope']" in r.json()["error"]["message"], r.text
        assert put_artifact(client, model, onnx_bytes, ONNX).status_code == 200

        bad = {"rows": [{"x1": "high", "x2": 0.1, "x3": 0.2}], "prediction_ids": ["bad-1"]}
        r = client.post(f"/v1/models/{model}/predict", json=bad)
        assert r.status_code == 400, r.text
        assert "x1" in r.json()["error"]["message"]

        # the artifact file broken on disk before it was first loaded
        (path,) = (api.data_dir / "artifacts" / model / "v1").iterdir()
        path.write_bytes(b"not an onnx graph")
        request = {
            "inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}],
            "parameters": {"prediction_ids": ["broken-1"]},
        }
        r = client.post(f"/v2/models/{model}/infer", json=request)
        assert r.status_code == 500, r.text
        assert "failed to load" in r.json()["error"]  # the protocol's error: a string
        assert client.get(f"/v2/models/{model}/ready").status_code == 500

        items = client.get(f"/v1/models/{model}/quarantine").json()["items"]
        reasons = {i["prediction_id"]: i["reasons"] for i in items}
        assert reasons["bad-1"][0]["field"] == "x1"
        assert reasons["broken-1"][0]["field"] == "model"
        assert "failed to load" in reasons["broken-1"][0]["problem"]


def test_oip_requests_that_do_not_fit_the_model_name_the_tensor(
    api: Server, onnx_bytes: bytes
) -> None:
    with api.client() as client:
        model = register(client)
        assert put_artifact(client, model, onnx_bytes, ONNX).status_code == 200
        cases = [
            (
                {
                    "inputs": [
                        {"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}
                    ]
                },
                "2 columns",
            ),
            (
                {"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP32", "data": [1]}]},
                "holds 6 values",
            ),
            (
                {"inputs": [{"name": "x1", "shape": [1], "datatype": "FP99", "data": [1]}]},
                "datatype 'FP99'",
            ),
            ({"inputs": []}, "non-empty list"),
        ]
        for request, message in cases:
            r = client.post(f"/v2/models/{model}/infer", json=request)
            assert r.status_code == 400, (request, r.text)
            assert message in r.json()["error"], r.text  # the protocol's error: a string
        other = register(client)
        request = {
            "inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}],
            "parameters": {"prediction_ids": ["none-1"]},
        }
        r = client.post(f"/v2/models/{other}/infer", json=request)
        assert r.status_code == 404 and "no artifact" in r.json()["error"]
        (item,) = client.get(f"/v1/models/{other}/quarantine").json()["items"]
        assert item["prediction_id"] == "none-1" and item["reasons"][0]["field"] == "model"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # MLflow's own deprecation and future warnings
def test_an_mlflow_model_from_a_local_registry_by_alias(
    server: ServerFactory, database_url: str, tmp_path: Path
) -> None:
    pytest.importorskip("mlflow")
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    x, y = training()
    frame = pd.DataFrame(x, columns=FEATURES)
    forest = LogisticRegression(C=0.5).fit(frame, y)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(tracking)
    experiment = mlflow.create_experiment("serving", artifact_location=(tmp_path / "runs").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        mlflow.sklearn.log_model(
            forest, name="model", registered_model_name="churn", input_example=frame.head(2)
        )
    mlflow.MlflowClient().set_registered_model_alias("churn", "champion", 1)

    api = server(database_url, env={"WATCHKEEPER_MLFLOW_TRACKING_URI": tracking})
    with api.client(timeout=120) as client:
        model = register(client)
        r = client.put(
            f"/v1/models/{model}/versions/v1/artifact", json={"uri": "models:/churn@champion"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["format"] == "mlflow" and r.json()["features"] == FEATURES
        x2 = rows(4)
        r = client.post(
            f"/v1/models/{model}/predict",
            json={"columns": {f: x2[:, j].tolist() for j, f in enumerate(FEATURES)}},
        )
        assert r.status_code == 200, r.text
        test = pd.DataFrame(x2, columns=FEATURES)
        assert r.json()["predictions"] == forest.predict(test).tolist()
        proba = forest.predict_proba(test)
        assert [s["yes"] for s in r.json()["scores"]] == pytest.approx(proba[:, 1].tolist())
        r = client.put(f"/v1/models/{model}/versions/v1/artifact", json={"uri": "models:/nope@x"})
        assert r.status_code == 400 and "models:/nope@x" in r.json()["error"]["message"]


def test_the_sdk_and_the_command_line_attach_at_registration_or_later(
    api: Server, clf: Any, onnx_bytes: bytes, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from watchkeeper.cli import main
    from watchkeeper.sdk import Client, register

    x, y = training(200, seed=1)
    reference = tmp_path / "train.parquet"
    table = pa.table({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "label": y, "pred": y})
    pq.write_table(table, reference)
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(onnx_bytes)
    pickle_file = tmp_path / "model.joblib"
    pickle_file.write_bytes(pickle.dumps(clf))

    answer = register(
        api.url, "sdk-fn", reference, target="label", prediction="pred", artifact=onnx_file
    )
    assert answer["artifact"]["format"] == "onnx"
    with Client(api.url) as client:
        answer = client.register(
            "sdk-client",
            reference,
            target="label",
            prediction="pred",
            artifact=pickle_file,
            trust_pickle=True,
        )
    assert answer["artifact"]["format"] == "pickle" and answer["artifact"]["trusted"] == ["pickle"]

    runner = CliRunner()
    base = ["--target", "label", "--prediction", "pred", "--url", api.url]
    result = runner.invoke(
        main, ["register", "cli", str(reference), "--artifact", str(pickle_file), *base]
    )
    assert result.exit_code == 2 and "--trust-pickle" in result.output, result.output
    result = runner.invoke(main, ["attach", "cli", "v1", str(onnx_file), "--url", api.url])
    assert result.exit_code == 0 and "attached a onnx artifact" in result.output, result.output
    result = runner.invoke(
        main, ["attach", "cli", "v1", str(pickle_file), "--trust-pickle", "--url", api.url]
    )
    assert result.exit_code == 0 and "pickle" in result.output, result.output

    with api.client() as http:
        for model in ("sdk-fn", "sdk-client", "cli"):
            r = http.post(
                f"/v1/models/{model}/predict",
                json={"columns": {f: x[:4, j].tolist() for j, f in enumerate(FEATURES)}},
            )
            assert r.status_code == 200, r.text
            assert r.json()["predictions"] == clf.predict(x[:4].astype(np.float32)).tolist()


def test_concurrent_first_requests_are_all_answered_and_a_new_artifact_is_served_at_once(
    api: Server, clf: Any, wait_for: Callable[..., None]
) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    x, y = training()
    flipped = LogisticRegression().fit(x, np.where(y == "yes", "no", "yes"))
    test = rows(6, seed=11)
    body = {"columns": {f: test[:, j].tolist() for j, f in enumerate(FEATURES)}}
    with api.client() as client:
        model = register(client)
        assert put_artifact(client, model, sio.dumps(clf), "application/x-skops").status_code == 200

        def ask(_: int) -> Any:
            with api.client() as c:
                return c.post(f"/v1/models/{model}/predict", json=body)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(16)))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        assert all(a.json()["predictions"] == clf.predict(test).tolist() for a in answers)

        r = put_artifact(client, model, sio.dumps(flipped), "application/x-skops")
        assert r.status_code == 200, r.text
        r = client.post(f"/v1/models/{model}/predict", json=body)
        assert r.json()["predictions"] == flipped.predict(test).tolist()
        assert r.json()["predictions"] != clf.predict(test).tolist()
        wait_for(
            lambda: client.get(f"/v1/models/{model}").json()["events_total"] == 17 * 6,
            "every scored row stored",
        )


def test_tritons_own_http_client_checks_health_reads_metadata_and_infers(
    api: Server, clf: Any, onnx_bytes: bytes
) -> None:
    """NVIDIA's ``tritonclient`` (the client KServe's docs use for v2 too), unchanged: JSON
    tensors and its default, the binary tensor extension, in both directions."""
    th = pytest.importorskip("tritonclient.http", reason="pip install -e '.[dev]'")
    with api.client() as client:
        model = register(client)
        assert put_artifact(client, model, onnx_bytes, ONNX).status_code == 200
    triton = th.InferenceServerClient(url=api.url.removeprefix("http://"))
    try:
        assert triton.is_server_live() and triton.is_server_ready()
        assert triton.is_model_ready(model)
        metadata = triton.get_model_metadata(model)
        assert [i["name"] for i in metadata["inputs"]] == FEATURES
        x = rows(4, seed=11).astype(np.float32)
        for binary in (False, True):
            tensor = th.InferInput("input", [4, 3], "FP32")
            tensor.set_data_from_numpy(x, binary_data=binary)
            wanted = [
                th.InferRequestedOutput("predict", binary_data=binary),
                th.InferRequestedOutput("predict_proba", binary_data=binary),
            ]
            result = triton.infer(model, [tensor], outputs=wanted, request_id=f"r-{binary}")
            predict = [
                p.decode() if isinstance(p, bytes) else p for p in result.as_numpy("predict")
            ]
            assert predict == clf.predict(x.astype(np.float64)).tolist(), binary
            np.testing.assert_allclose(
                result.as_numpy("predict_proba"), clf.predict_proba(x), atol=1e-5
            )
            response = result.get_response()
            assert response["id"] == f"r-{binary}"
            assert len(response["parameters"]["prediction_ids"]) == 4
        with api.client() as client:
            bare = register(client)  # no artifact: the client reads the protocol's error
        with pytest.raises(th.InferenceServerException, match="no artifact"):
            triton.infer(bare, [tensor])
    finally:
        triton.close()


def test_binary_bodies_that_do_not_add_up_are_refused_naming_the_tensor(
    api: Server, onnx_bytes: bytes
) -> None:
    import json

    with api.client() as client:
        model = register(client)
        assert put_artifact(client, model, onnx_bytes, ONNX).status_code == 200
        raw = np.ones((1, 3), "<f4").tobytes()

        def post(header: dict[str, Any], tail: bytes, length: int | None = None) -> Any:
            text = json.dumps(header).encode()
            return client.post(
                f"/v2/models/{model}/infer",
                content=text + tail,
                headers={
                    "inference-header-content-length": str(len(text) if length is None else length),
                    "content-type": "application/octet-stream",
                },
            )

        tensor = {"name": "input", "shape": [1, 3], "datatype": "FP32"}
        ok = post({"inputs": [{**tensor, "parameters": {"binary_data_size": 12}}]}, raw)
        assert ok.status_code == 200, ok.text
        cases = [
            (post({"inputs": [tensor]}, raw, length=10_000), "Inference-Header-Content-Length"),
            (post({"inputs": [{**tensor, "parameters": {"binary_data_size": 16}}]}, raw), "16"),
            (post({"inputs": [{**tensor, "parameters": {"binary_data_size": 12}}]}, raw + b"x"),
             "1 bytes after"),
            (post({"inputs": [{**tensor, "parameters": {"binary_data_size": 10}}]}, raw[:10]),
             "not a whole number of FP32"),
        ]  # fmt: skip
        for r, message in cases:
            assert r.status_code == 400, r.text
            assert message in r.json()["error"], r.text
