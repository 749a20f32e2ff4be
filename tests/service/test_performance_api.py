"""``GET /v1/models/{model}/metrics`` through ``watchkeeper serve``: a window's performance
points carry their confidence interval, the answer carries the training baseline (the same
metric over the reference's labelled rows), and the prediction's own drift (the prediction
and the score column) is a series of its own, apart from the features' drift."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from tests.service.fixtures import ServerFactory

Z = norm.ppf(0.975)


def _wilson(k: float, n: float) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * np.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


def _classified(rng: np.random.Generator, n: int, noise: float) -> dict[str, np.ndarray]:
    truth = rng.random(n) < 0.4
    score = np.clip(np.where(truth, 0.65, 0.35) + rng.normal(0, noise, n), 0, 1)
    return {
        "x": rng.normal(0, 1, n),
        "p_yes": score,
        "pred": np.where(score > 0.5, "yes", "no"),
        "y": np.where(truth, "yes", "no"),
    }


def test_points_carry_intervals_and_the_answer_the_training_baseline(
    database_url: str, server: ServerFactory, wait_for: Callable[..., None]
) -> None:
    rng = np.random.default_rng(8)
    ref = _classified(rng, 1500, 0.15)
    buf = io.BytesIO()
    pq.write_table(pa.table(ref), buf)
    env = {"WATCHKEEPER_EVALUATION_INTERVAL_SECONDS": "0.3"}
    with server(database_url, env=env).client() as api:
        r = api.put(
            "/v1/models/m/versions/v1?target=y&prediction=pred&scores=p_yes",
            content=buf.getvalue(),
            headers={"content-type": "application/vnd.apache.parquet"},
        )
        assert r.status_code == 201, r.text
        cur = _classified(rng, 500, 0.3)  # the model does worse than in training
        start = (int(time.time()) // 3600 - 3) * 3600
        events = [
            {
                "prediction_id": f"p{i}",
                "timestamp": start + i,
                "features": {"x": float(cur["x"][i]), "p_yes": float(cur["p_yes"][i])},
                "prediction": str(cur["pred"][i]),
            }
            for i in range(500)
        ]
        r = api.post("/v1/models/m/predictions", json={"events": events})
        assert r.status_code == 200 and r.json()["accepted"] == 500, r.text
        labelled = np.ones(500, dtype=bool)
        labelled[::7] = False  # some labels never come
        actuals = [
            {"prediction_id": f"p{i}", "label": str(cur["y"][i])} for i in np.flatnonzero(labelled)
        ]
        assert api.post("/v1/models/m/actuals", json={"actuals": actuals}).status_code == 200

        def series(metric: str, **params: Any) -> dict[str, Any]:
            r = api.get("/v1/models/m/metrics", params={"metric": metric, **params})
            assert r.status_code == 200, r.text
            answer: dict[str, Any] = r.json()
            return answer

        wait_for(
            lambda: any(p["value"] is not None for p in series("accuracy")["points"]),
            "the labelled window to be evaluated",
        )
        answer = series("accuracy")
        [point] = answer["points"]
        y, p, n = cur["y"][labelled], cur["pred"][labelled], int(labelled.sum())
        correct = float((y == p).sum())
        assert point["value"] == pytest.approx(correct / n, abs=1e-12)
        detail = point["detail"]
        assert detail["method"] == "wilson" and detail["n"] == n and detail["level"] == 0.95
        assert (detail["low"], detail["high"]) == pytest.approx(_wilson(correct, n), abs=1e-12)

        [base] = answer["baseline"]
        ref_correct = float((ref["y"] == ref["pred"]).sum())
        assert base["version"] == "v1" and base["value"] == pytest.approx(ref_correct / 1500)
        assert base["detail"]["n"] == 1500 and base["detail"]["method"] == "wilson"
        assert (base["detail"]["low"], base["detail"]["high"]) == pytest.approx(
            _wilson(ref_correct, 1500), abs=1e-12
        )
        assert base["value"] > detail["high"]  # the worse model is outside its interval

        auc = series("roc_auc")
        [auc_point], [auc_base] = auc["points"], auc["baseline"]
        assert auc_point["detail"]["method"] == "delong" and auc_point["detail"]["n"] == n
        expected = roc_auc_score(y == "yes", cur["p_yes"][labelled])
        assert auc_point["value"] == pytest.approx(expected, abs=2e-3)
        assert auc_base["value"] == pytest.approx(
            roc_auc_score(ref["y"] == "yes", ref["p_yes"]), abs=2e-3
        )
        for metric in ("f1", "precision", "recall"):
            [pt] = series(metric)["points"]
            assert pt["detail"]["low"] <= pt["value"] <= pt["detail"]["high"], metric
            assert series(metric)["baseline"][0]["value"] is not None, metric
        assert series("count")["baseline"] == []

        # the prediction's own drift: the prediction and the score, not counted as features
        for output in ("pred", "p_yes"):
            [drift] = series("prediction_drift", feature=output)["points"]
            assert drift["value"] is not None and "threshold" in drift["detail"], output
        r = api.get(
            "/v1/models/m/metrics", params={"metric": "drift_statistic", "feature": "p_yes"}
        )
        assert r.status_code == 404 and "x" in r.json()["error"]["message"], r.text
        summary = api.get("/v1/models/m").json()["latest_window"]["summary"]
        assert summary["checked"] == 1  # x alone


def test_a_reference_without_labels_has_no_baseline(
    database_url: str, server: ServerFactory, reference: pa.Table
) -> None:
    buf = io.BytesIO()
    pq.write_table(reference, buf)
    with server(database_url).client() as api:
        r = api.put(
            "/v1/models/m/versions/v1?prediction=pred",
            content=buf.getvalue(),
            headers={"content-type": "application/vnd.apache.parquet"},
        )
        assert r.status_code == 201, r.text
        r = api.get("/v1/models/m/metrics", params={"metric": "accuracy"})
        assert r.status_code == 200 and r.json()["baseline"] == [] and r.json()["points"] == []
