"""A window's performance from late labels: accuracy over every labelled prediction, ROC AUC
over those that carried a score — checked against scikit-learn on the same rows."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyarrow import ipc
from sklearn.metrics import accuracy_score, roc_auc_score

from watchkeeper.evaluation.evaluate import Evaluator, series
from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.settings import load_settings
from watchkeeper.store.state import Store

HOUR = 3600
T0 = 1_714_554_000.0


def test_accuracy_and_roc_auc_of_a_window(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    settings = load_settings(data_dir=tmp_path / "data", label_horizon_days=9999)
    service = IngestService(store, settings)
    rng = np.random.default_rng(5)
    m = 2000
    reference = pa.table(
        {
            "x": rng.normal(0, 1, m),
            "p_yes": rng.uniform(0, 1, m),
            "pred": rng.choice(["no", "yes"], m),
            "y": rng.choice(["no", "yes"], m),
        }
    )
    service.register("m", reference, prediction="pred", target="y", scores=["p_yes"])
    n = 4000
    truth = rng.random(n) < 0.4
    p_yes = np.clip(np.where(truth, 0.65, 0.35) + rng.normal(0, 0.2, n), 0, 1)
    has_score = rng.random(n) < 0.7  # some callers send no score
    preds = np.where(p_yes > 0.5, "yes", "no")
    ids = [f"p{i}" for i in range(n)]
    table = pa.table(
        {
            "prediction_id": ids,
            "timestamp": T0 + rng.uniform(0, HOUR - 1, n),
            "x": rng.normal(0, 1, n),
            "p_yes": pa.array(p_yes, mask=~has_score),
            "pred": preds,
        }
    )
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    assert service.ingest("m", sink.getvalue(), "application/vnd.apache.arrow.stream").accepted == n
    Processor(store, settings).run_once()
    labels = np.where(truth, "yes", "no")
    labelled = rng.random(n) < 0.7
    for part in np.array_split(np.flatnonzero(labelled), 3):  # labels come in three deliveries
        body = {"actuals": [{"prediction_id": ids[i], "label": str(labels[i])} for i in part]}
        service.actuals("m", json.dumps(body).encode())
    assert Evaluator(store).run_once(now=T0 + 2 * HOUR) == 1

    [accuracy] = series(store, "m", "accuracy")
    assert accuracy["value"] == accuracy_score(labels[labelled], preds[labelled])
    [auc] = series(store, "m", "roc_auc")
    both = labelled & has_score
    expected = roc_auc_score(labels[both] == "yes", p_yes[both])
    # 1000 score bins: within the aggregate's documented bound of the exact value
    assert abs(auc["value"] - expected) < 2e-3, (auc["value"], expected)
    assert auc["value"] != accuracy["value"]


def test_labels_that_come_before_their_predictions_join_them_later(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    settings = load_settings(data_dir=tmp_path / "data", label_horizon_days=9999)
    service = IngestService(store, settings)
    rng = np.random.default_rng(9)
    reference = pa.table({"x": rng.normal(0, 1, 500), "pred": rng.choice(["no", "yes"], 500),
                          "y": rng.choice(["no", "yes"], 500)})  # fmt: skip
    service.register("m", reference, prediction="pred", target="y")
    n = 600
    ids = [f"e{i}" for i in range(n)]
    preds, labels = rng.choice(["no", "yes"], n), rng.choice(["no", "yes"], n)
    early = {
        "actuals": [{"prediction_id": i, "label": str(y)} for i, y in zip(ids, labels, strict=True)]
    }
    assert service.actuals("m", json.dumps(early).encode())["unmatched"] == n
    table = pa.table(
        {"prediction_id": ids, "timestamp": T0 + rng.uniform(0, HOUR - 1, n),
         "x": rng.normal(0, 1, n), "pred": preds}
    )  # fmt: skip
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    service.ingest("m", sink.getvalue(), "application/vnd.apache.arrow.stream")
    Processor(store, settings).run_once()
    Processor(store, settings).run_once()  # a second pass (a restart) changes nothing
    status = service.status("m")
    assert (status["actuals_total"], status["actuals_unmatched_total"]) == (n, 0)
    assert Evaluator(store).run_once(now=T0 + 2 * HOUR) == 1
    [accuracy] = series(store, "m", "accuracy")
    assert accuracy["value"] == accuracy_score(labels, preds)
