"""Retention keeps every series going as daily points: a day past the retention is evaluated
from its daily profile and labels before its window points are deleted."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyarrow import ipc
from sklearn.metrics import accuracy_score

from watchkeeper.evaluation.evaluate import Evaluator, series
from watchkeeper.evaluation.retention import sweep
from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.settings import load_settings
from watchkeeper.store.state import Store

DAY, HOUR = 86400, 3600
T0 = 1_714_521_600.0  # 2024-05-01 00:00 UTC


def test_old_windows_become_daily_points(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    settings = load_settings(data_dir=tmp_path / "data", retention_days=30, label_horizon_days=9999)
    service = IngestService(store, settings)
    rng = np.random.default_rng(0)
    reference = pa.table(
        {"x": rng.normal(0, 1, 3000), "pred": rng.choice(["a", "b"], 3000), "y": ["a"] * 3000}
    )
    service.register("m", reference, prediction="pred", target="y", window_seconds=HOUR)
    n = 3000
    ids = [f"p{i}" for i in range(n)]
    preds = rng.choice(["a", "b"], n)
    table = pa.table(
        {
            "prediction_id": ids,
            "timestamp": T0 + 6 * HOUR + rng.uniform(0, 5 * HOUR, n),  # five windows of one day
            "x": rng.normal(0.5, 1, n),
            "pred": preds,
            "latency_ms": rng.lognormal(3, 0.4, n),
        }
    )
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    service.ingest("m", sink.getvalue(), "application/vnd.apache.arrow.stream")
    Processor(store, settings).run_once()
    labels = rng.choice(["a", "b"], n)
    labelled = rng.random(n) < 0.6
    body = {
        "actuals": [
            {"prediction_id": pid, "label": str(lab)}
            for pid, lab, keep in zip(ids, labels, labelled, strict=True)
            if keep
        ]
    }
    service.actuals("m", json.dumps(body).encode())
    assert Evaluator(store).run_once(now=T0 + 2 * DAY) == 5
    assert {p["window_seconds"] for p in series(store, "m", "count")} == {HOUR}

    removed = sweep(store, settings.lake_dir, now=T0 + 40 * DAY)
    assert removed["days_downsampled"] == 1
    counts = series(store, "m", "count")
    assert [(p["window_start"], p["window_seconds"], p["value"]) for p in counts] == [(T0, DAY, n)]
    [accuracy] = series(store, "m", "accuracy")
    assert accuracy["value"] == accuracy_score(labels[labelled], preds[labelled])
    [drift] = series(store, "m", "drift_statistic", feature="x")
    assert drift["window_seconds"] == DAY and drift["detail"]["drifted"]
    # a second sweep neither evaluates the day again nor deletes its points
    assert sweep(store, settings.lake_dir, now=T0 + 41 * DAY)["days_downsampled"] == 0
    assert len(series(store, "m", "count")) == 1
