"""A closed window evaluated again for its late labels costs what its labels cost: its drift
(a threshold calibrated by simulation, per column) is not computed again while its profile is
unchanged, and an evaluator pass reads the profiles of the due windows only, not every window
the model kept (issue: the soak's server CPU doubled once its first window closed, as that
window was evaluated again at every pass while its labels came in)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from pyarrow import ipc
from sklearn.metrics import accuracy_score

import watchkeeper.stats.drift
from tests.service.test_status_cost import statements
from watchkeeper.evaluation.evaluate import Evaluator, series
from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.settings import load_settings
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

HOUR = 3600
T0 = (int(time.time()) // HOUR - 4) * HOUR  # four closed hours back: labels in real time


def _events(hour: int, n: int, seed: int) -> tuple[bytes, pa.Table]:
    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "prediction_id": [f"s{seed}-{i}" for i in range(n)],
            "timestamp": T0 + hour * HOUR + rng.uniform(0, HOUR - 1, n),
            "x": rng.normal(0.2, 1, n),
            "c": rng.choice(["a", "b", "c"], n),
            "pred": rng.choice(["no", "yes"], n),
        }
    )
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue(), table


def _service(store: Store, tmp_path: Path) -> IngestService:
    service = IngestService(store, load_settings(data_dir=tmp_path / "data"))
    rng = np.random.default_rng(0)
    reference = pa.table(
        {
            "x": rng.normal(0, 1, 2000),
            "c": rng.choice(["a", "b", "c"], 2000),
            "pred": rng.choice(["no", "yes"], 2000),
            "y": rng.choice(["no", "yes"], 2000),
        }
    )
    service.register("m", reference, prediction="pred", target="y", window_seconds=HOUR)
    return service


def _ingest(service: IngestService, store: Store, hour: int, n: int, seed: int) -> pa.Table:
    body, table = _events(hour, n, seed)
    assert service.ingest("m", body, "application/vnd.apache.arrow.stream").accepted == n
    Processor(store, service.settings).run_once()
    return table


def _points(store: Store) -> list[tuple[Any, ...]]:
    mp = t.metric_points.c
    q = sa.select(mp.window_start, mp.metric, mp.feature, mp.value, mp.detail)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    return sorted((w, m, f, v, json.dumps(d, sort_keys=True)) for w, m, f, v, d in rows)


def _calibrations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the drift thresholds calibrated (the real functions run): ``null_threshold``, or
    ``null_samples`` for a statistic calibrated with its companion."""
    calls: list[int] = []

    def counting(name: str) -> None:
        real = getattr(watchkeeper.stats.drift, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            return real(*args, **kwargs)

        monkeypatch.setattr(watchkeeper.stats.drift, name, counted)

    counting("null_threshold")
    counting("null_samples")
    return calls


def test_late_labels_do_not_calibrate_a_windows_drift_again(
    database_url: str,
    open_store: Callable[[str], Store],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_store(database_url)
    service = _service(store, tmp_path)
    table = _ingest(service, store, 0, 1500, seed=1)
    calibrated = _calibrations(monkeypatch)
    evaluator = Evaluator(store)
    assert evaluator.run_once() == 1
    first = len(calibrated)
    assert first >= 3  # x, c and the prediction

    ids, preds = table["prediction_id"].to_pylist(), table["pred"].to_pylist()
    labels = np.random.default_rng(2).choice(["no", "yes"], len(ids))
    for part in np.array_split(np.arange(len(ids)), 3):  # three deliveries, a pass after each
        body = {"actuals": [{"prediction_id": ids[i], "label": str(labels[i])} for i in part]}
        service.actuals("m", json.dumps(body).encode())
        Processor(store, service.settings).run_once()
        assert evaluator.run_once() == 1
    assert len(calibrated) == first, "the window's drift was calibrated again for its labels"
    [accuracy] = series(store, "m", "accuracy")
    assert accuracy["value"] == accuracy_score(labels, preds)

    # the points are those a fresh evaluator (a restarted server) computes from scratch
    kept = _points(store)
    with store.engine.begin() as conn:
        conn.execute(t.bucket_profiles.update().values(dirty=True))
    assert Evaluator(store).run_once() == 1
    assert _points(store) == kept
    assert len(calibrated) == 2 * first

    # late events change the profile: the window's drift is computed again
    _ingest(service, store, 0, 300, seed=3)
    assert evaluator.run_once() == 1
    assert len(calibrated) == 3 * first
    late = _points(store)
    assert late != kept
    with store.engine.begin() as conn:
        conn.execute(t.bucket_profiles.update().values(dirty=True))
    assert Evaluator(store).run_once() == 1
    assert _points(store) == late


def test_a_pass_reads_the_profiles_of_the_due_windows_only(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    service = _service(store, tmp_path)
    for hour in range(3):
        _ingest(service, store, hour, 400, seed=10 + hour)
    evaluator = Evaluator(store)
    assert evaluator.run_once() == 3

    with statements(store.engine) as seen:
        assert evaluator.run_once() == 0
    reads = [s for s in seen if "wk_bucket_profiles.profile" in s]
    assert not reads, f"a pass with nothing due read the profiles: {reads}"

    _ingest(service, store, 1, 50, seed=20)  # late events for one window
    with statements(store.engine) as seen:
        assert evaluator.run_once() == 1
    reads = [s for s in seen if "wk_bucket_profiles.profile" in s and "SELECT" in s]
    assert len(reads) == 1 and "wk_bucket_profiles.bucket =" in reads[0], reads
