"""Explaining served predictions on a real server (SQLite and PostgreSQL).

``POST /v1/models/{model}/explain``: a skops logistic regression is explained by SHAP's
linear explainer — the oracle: a row's contributions sum to its log-odds minus the expected
value, and two rows' contributions differ by ``coef × (x − x')`` whatever the background; an
ONNX session by the permutation explainer — its explained output is the model's own
probability (``predict_proba``) and the contributions sum to it minus the expected value.
Bad bodies answer 400 naming the field, an unknown model or a version without an artifact 404.

``GET .../predictions/{id}/explanation``: a prediction scored through ``/predict`` is
explained as ``/explain`` explains its inputs; one logged for a version without an artifact by
a surrogate, marked approximate with its held-out fidelity. Attaching an artifact keeps the
attribution shares of the version's reference sample (a tree model: the oracle is
``shap.TreeExplainer`` on the same rows).
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.service.fixtures import Server, ServerFactory

pytest.importorskip("shap", reason="the explain extra: pip install -e '.[dev]'")
pytest.importorskip("onnxruntime", reason="the serve extra: pip install -e '.[dev]'")
pytest.importorskip("skops")
pytest.importorskip("skl2onnx")

FEATURES = ["x1", "x2", "x3"]


def training(rows: int, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (rows, 3))
    y = np.where(x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2] + rng.normal(0, 0.5, rows) > 0, 1, 0)
    return x, y


@pytest.fixture(scope="module")
def clf() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(*training(300, 0))


@pytest.fixture(scope="module")
def api(module_server: ServerFactory, module_databases: Callable[[], str]) -> Iterator[Server]:
    yield module_server(module_databases())


def register(client: httpx.Client, predictions: np.ndarray[Any, Any] | None = None) -> str:
    model = f"xp-{secrets.token_hex(4)}"
    x, y = training(400, seed=1)
    pred = y if predictions is None else predictions
    table = pa.table({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "label": y, "pred": pred})
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


def attach(client: httpx.Client, model: str, data: bytes, ct: str, **params: str) -> None:
    r = client.put(
        f"/v1/models/{model}/versions/v1/artifact",
        content=data,
        headers={"content-type": ct},
        params={"features": ",".join(FEATURES), **params},
    )
    assert r.status_code == 200, r.text


def skops_bytes(model: Any) -> bytes:
    import skops.io as sio

    return bytes(sio.dumps(model))


def given_rows() -> np.ndarray[Any, Any]:
    return np.round(np.random.default_rng(7).normal(0, 1, (4, 3)), 4)


def body(x: np.ndarray[Any, Any]) -> dict[str, Any]:
    return {"rows": [dict(zip(FEATURES, map(float, r), strict=True)) for r in x]}


def test_a_linear_model_is_explained_exactly(api: Server, clf: Any) -> None:
    x = given_rows()
    with api.client(timeout=120) as client:
        model = register(client)
        attach(client, model, skops_bytes(clf), "application/x-skops")
        r = client.post(f"/v1/models/{model}/explain", json=body(x), params={"top": 3})
        assert r.status_code == 200, r.text
        got = r.json()
    assert got["method"] == "shap_linear" and got["approximate"] is False
    assert got["explained"] == "score of class 1"
    assert [row["prediction"] for row in got["rows"]] == clf.predict(x).tolist()
    margin = clf.decision_function(x)
    contrib = np.zeros((len(x), 3))
    for i, row in enumerate(got["rows"]):
        assert row["scores"]["1"] == pytest.approx(clf.predict_proba(x)[i, 1], abs=1e-9)
        values = [c["contribution"] for c in row["contributions"]]
        assert values == sorted(values, key=abs, reverse=True)  # largest first
        for c in row["contributions"]:
            contrib[i, FEATURES.index(c["feature"])] = c["contribution"]
            assert c["value"] == x[i, FEATURES.index(c["feature"])]
        assert row["output"] == pytest.approx(margin[i], abs=1e-9)
        assert sum(values) == pytest.approx(margin[i] - row["expected_value"], abs=1e-9)
    # independent features: contribution_j = coef_j (x_j - mean_j), the mean the background's
    np.testing.assert_allclose(contrib[0] - contrib[1], clf.coef_[0] * (x[0] - x[1]), atol=1e-9)


def test_an_onnx_session_is_explained_by_permutation(api: Server, clf: Any) -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(
        clf,
        initial_types=[("input", FloatTensorType([None, 3]))],
        options={id(clf): {"zipmap": False}},
        target_opset=15,
    )
    x = given_rows()
    with api.client(timeout=120) as client:
        model = register(client)
        attach(client, model, onx.SerializeToString(), "application/onnx")
        r = client.post(f"/v1/models/{model}/explain", json=body(x), params={"top": 2})
        assert r.status_code == 200, r.text
        got = r.json()
    assert got["method"] == "shap_permutation"
    proba = clf.predict_proba(x)[:, 1]
    for i, row in enumerate(got["rows"]):
        assert len(row["contributions"]) == 2
        assert row["output"] == pytest.approx(proba[i], abs=1e-5)  # float32 graph
        assert row["scores"]["1"] == pytest.approx(proba[i], abs=1e-5)
    # all three contributions: they sum to the output minus the expected value
    with api.client(timeout=120) as client:
        full = client.post(f"/v1/models/{model}/explain", json=body(x)).json()
    for row in full["rows"]:
        total = sum(c["contribution"] for c in row["contributions"])
        assert total == pytest.approx(row["output"] - row["expected_value"], abs=1e-6)


def test_bad_requests_name_the_field_and_unknown_models_answer_404(api: Server, clf: Any) -> None:
    with api.client(timeout=120) as client:
        model = register(client)
        r = client.post(f"/v1/models/{model}/explain", json=body(given_rows()))
        assert r.status_code == 404 and "artifact" in r.text  # registered, nothing served
        attach(client, model, skops_bytes(clf), "application/x-skops")
        r = client.post(f"/v1/models/{model}/explain", json={"rows": [{"x1": 1.0, "x2": 0.0}]})
        assert r.status_code == 400 and "x3" in r.text
        bad = {"rows": [{"x1": 1.0, "x2": "high", "x3": 0.0}]}
        r = client.post(f"/v1/models/{model}/explain", json=bad)
        assert r.status_code == 400 and "x2" in r.text
        r = client.post(f"/v1/models/{model}/explain", json={"data": []})
        assert r.status_code == 400 and "rows" in r.text
        r = client.post(f"/v1/models/{model}/explain", json=body(given_rows()), params={"top": 0})
        assert r.status_code == 422 and "top" in r.text
        r = client.post("/v1/models/no-such-model/explain", json=body(given_rows()))
        assert r.status_code == 404 and "no-such-model" in r.text
        r = client.get(f"/v1/models/{model}/predictions/never-logged/explanation")
        assert r.status_code == 404 and "never-logged" in r.text


def test_a_logged_prediction_is_explained_as_its_inputs_are(
    api: Server, clf: Any, wait_for: Callable[..., None]
) -> None:
    x = given_rows()
    with api.client(timeout=120) as client:
        model = register(client)
        attach(client, model, skops_bytes(clf), "application/x-skops")
        r = client.post(f"/v1/models/{model}/predict", json=body(x))
        assert r.status_code == 200, r.text
        ids = r.json()["prediction_ids"]

        def logged() -> bool:
            got = client.get(f"/v1/models/{model}/predictions/{ids[2]}/explanation")
            assert got.status_code in (200, 404), got.text
            return got.status_code == 200

        wait_for(logged, "the scored rows in the prediction index and the lake")
        one = client.get(f"/v1/models/{model}/predictions/{ids[2]}/explanation").json()
        direct = client.post(f"/v1/models/{model}/explain", json=body(x[2:3])).json()
    assert one["prediction_id"] == ids[2] and one["source"] == "model"
    assert one["rows"][0]["prediction"] == str(clf.predict(x[2:3])[0])
    assert one["rows"][0]["contributions"] == direct["rows"][0]["contributions"]
    assert one["rows"][0]["expected_value"] == direct["rows"][0]["expected_value"]


def test_without_an_artifact_a_surrogate_explains_approximately(
    api: Server, clf: Any, wait_for: Callable[..., None]
) -> None:
    x_ref, _ = training(400, seed=1)
    with api.client(timeout=120) as client:
        model = register(client, predictions=clf.predict(x_ref))  # the model's logged outputs
        x = given_rows()
        events = [
            {"prediction_id": f"p{i}", **dict(zip(FEATURES, map(float, r), strict=True)),
             "pred": int(clf.predict(x[i : i + 1])[0])}
            for i, r in enumerate(x)
        ]  # fmt: skip
        r = client.post(f"/v1/models/{model}/predictions", json=events)
        assert r.status_code in (200, 202), r.text
        url = f"/v1/models/{model}/predictions/p1/explanation"
        wait_for(lambda: client.get(url).status_code == 200, "the logged events in the lake")
        got = client.get(url).json()
    assert got["source"] == "surrogate" and got["approximate"] is True
    fidelity = got["fidelity"]
    assert fidelity["metric"] == "agreement" and fidelity["held_out_rows"] == 100
    assert 0.8 < fidelity["value"] <= 1.0
    row = got["rows"][0]
    assert str(row["prediction"]) == str(clf.predict(x[1:2])[0])  # as logged
    total = sum(c["contribution"] for c in row["contributions"])
    assert total == pytest.approx(row["output"] - row["expected_value"], abs=1e-6)
    assert row["contributions"][0]["feature"] == "x1"  # what the model (and its surrogate) read


def test_attaching_an_artifact_keeps_the_reference_samples_attribution_shares(
    api: Server, open_store: Callable[[str], Any], wait_for: Callable[..., None]
) -> None:
    import shap
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = training(400, seed=1)
    tree = GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0).fit(x, y)
    with api.client(timeout=120) as client:
        model = register(client)
        trusted = "sklearn.tree._tree.Tree"
        attach(client, model, skops_bytes(tree), "application/x-skops", trusted=trusted)
    store = open_store(api.database_url)  # kept in a thread of their own: attaching is quick
    wait_for(lambda: store.reference_attributions(model, "v1") is not None, "the shares")
    kept = store.reference_attributions(model, "v1")
    assert kept["origin"] == "artifact" and kept["method"] == "shap_tree"
    mean_abs = np.abs(shap.TreeExplainer(tree).shap_values(x)).mean(axis=0)  # the same 400 rows
    expected = mean_abs / mean_abs.sum()
    got = np.array([kept["shares"][f] for f in FEATURES])
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_without_shap_the_server_answers_501_naming_the_extra(
    server: ServerFactory, database_url: str, clf: Any, tmp_path: Any
) -> None:
    import os

    blocked = tmp_path / "no-shap" / "shap"  # a server whose `import shap` fails
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('shap is not installed here')\n")
    path = os.pathsep.join(p for p in (str(blocked.parent), os.environ.get("PYTHONPATH")) if p)
    api = server(database_url, env={"PYTHONPATH": path})
    with api.client(timeout=120) as client:
        model = register(client)
        attach(client, model, skops_bytes(clf), "application/x-skops")  # attaching still works
        r = client.post(f"/v1/models/{model}/explain", json=body(given_rows()))
        assert r.status_code == 501, r.text
        assert "watchkeeper[explain]" in r.text
