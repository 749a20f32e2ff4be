"""A model registered with ``drift_reference=previous_window`` measures each window's drift
against the window before it, not the training reference."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import ipc

from watchkeeper.evaluation.evaluate import Evaluator, series
from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.profiles import DatasetProfile
from watchkeeper.settings import load_settings
from watchkeeper.stats.drift import column_drift
from watchkeeper.store.state import Store

HOUR = 3600
T0 = 1_714_554_000.0  # an hour boundary


def window_events(hour: int, shift: float, n: int = 2000) -> bytes:
    rng = np.random.default_rng(hour)
    table = pa.table(
        {
            "prediction_id": [f"h{hour}-{i}" for i in range(n)],
            "timestamp": T0 + hour * HOUR + rng.uniform(0, HOUR - 1, n),
            "x": rng.normal(shift, 1, n),
            "pred": rng.choice(["a", "b"], n),
        }
    )
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


@pytest.mark.parametrize("drift_reference", ["training", "previous_window"])
def test_each_window_drifts_against_its_reference(
    database_url: str,
    open_store: Callable[[str], Store],
    tmp_path: Path,
    drift_reference: str,
) -> None:
    store = open_store(database_url)
    service = IngestService(store, load_settings(data_dir=tmp_path / "data"))
    rng = np.random.default_rng(0)
    reference = pa.table({"x": rng.normal(0, 1, 5000), "pred": rng.choice(["a", "b"], 5000)})
    service.register(
        "m", reference, prediction="pred", window_seconds=HOUR, drift_reference=drift_reference
    )
    assert service.status("m")["drift_reference"] == drift_reference
    for hour, shift in enumerate([0.0, 1.0, 1.0]):  # a step change, then steady at the new level
        service.ingest("m", window_events(hour, shift), "application/vnd.apache.arrow.stream")
    Processor(store, service.settings).run_once()
    assert Evaluator(store).run_once(now=T0 + 10 * HOUR) == 3

    points = series(store, "m", "drift_statistic", feature="x")
    drifted = [p["detail"]["drifted"] for p in points]
    if drift_reference == "training":
        assert drifted == [False, True, True]
        assert {p["detail"]["reference"] for p in points} == {"training"}
    else:  # the first window has no window before it: the training reference
        assert drifted == [False, True, False]
        assert [p["detail"]["reference"] for p in points] == ["training", *["previous_window"] * 2]
        assert [p["detail"].get("reference_window_start") for p in points[1:]] == [
            T0,
            T0 + HOUR,
        ]
        # the statistic is the core's, on the two windows' stored profiles
        rows = {r["bucket"]: r for r in store.bucket_profiles("m", granularity=HOUR)}
        prev, cur = (DatasetProfile.from_bytes(rows[T0 + h * HOUR]["profile"]) for h in (1, 2))
        expected = column_drift("x", prev.columns["x"], cur.columns["x"], alpha=0.01)
        assert points[2]["value"] == pytest.approx(expected.statistic)
