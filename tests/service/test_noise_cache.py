"""The evaluator shares the calibration simulations (``NoiseCache``) across the columns of a
window and across windows, and its points are the same to the last bit with the cache cold,
warm, or absent (each column simulated on its own, as ``column_drift`` alone does)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import ipc

from watchkeeper.evaluation.evaluate import Evaluator
from watchkeeper.evaluation.noise import NoiseCache
from watchkeeper.evaluation.window_drift import ALPHA, DriftCache, profile_points
from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.profiles import DatasetProfile
from watchkeeper.settings import load_settings
from watchkeeper.stats.drift import column_drift
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

HOUR = 3600
T0 = 1_714_554_000.0  # an hour boundary


def frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, Any]:
    cols: dict[str, Any] = {f"n{j}": rng.normal(shift * (j % 2), 1, n) for j in range(6)}
    cols["gaps"] = np.where(rng.uniform(size=n) < 0.2, np.nan, rng.normal(size=n))
    cols |= {f"c{j}": rng.choice(["a", "b", "c"], n) for j in range(2)}
    cols["pred"] = rng.choice(["y", "n"], n)
    return cols


def window(hour: int, n: int, shift: float) -> bytes:
    rng = np.random.default_rng(hour)
    table = pa.table(
        {
            "prediction_id": [f"h{hour}-{i}" for i in range(n)],
            "timestamp": T0 + hour * HOUR + rng.uniform(0, HOUR - 1, n),
            **frame(rng, n, shift),
        }
    )
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def stored_points(store: Store) -> list[tuple[Any, ...]]:
    mp = t.metric_points.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            t.metric_points.select().order_by(mp.window_start, mp.metric, mp.feature)
        ).mappings()
        return [
            (r["window_start"], r["metric"], r["feature"], r["value"], r["detail"]) for r in rows
        ]


def test_points_are_identical_with_the_noise_cache_cold_warm_or_absent(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    service = IngestService(store, load_settings(data_dir=tmp_path / "data"))
    rng = np.random.default_rng(0)
    service.register("m", pa.table(frame(rng, 4000)), prediction="pred", window_seconds=HOUR)
    for hour, (n, shift) in enumerate([(600, 0.0), (900, 0.4), (600, 0.0)]):
        service.ingest("m", window(hour, n, shift), "application/vnd.apache.arrow.stream")
    Processor(store, service.settings).run_once()

    evaluator = Evaluator(store)
    assert evaluator.run_once(now=T0 + 10 * HOUR) == 3
    stored = stored_points(store)
    # the six numeric columns without gaps share one simulation per window size
    warm = evaluator.drift.noise
    entries = len(warm)
    assert 0 < entries < 3 * 9
    rows = store.bucket_profiles("m", granularity=HOUR)
    assert len(rows) == 3

    _, reference = store.reference("m", "v1")
    for row in rows:
        shared = profile_points(store, "m", row, warm)
        alone = profile_points(store, "m", row)  # this window's columns share, cold
        assert shared == alone
        current = DatasetProfile.from_bytes(row["profile"])
        drift = {p["feature"]: p for p in shared.points if p["metric"] == "drift_statistic"}
        assert len(drift) == 9
        for name, point in drift.items():  # each column on its own, no cache at all
            d = column_drift(name, reference.columns[name], current.columns[name], alpha=ALPHA)
            assert (point["value"], point["detail"]["threshold"]) == (d.statistic, d.threshold)
            assert point["detail"]["drifted"] == d.drifted
    assert len(warm) == entries  # nothing simulated again

    with store.write() as conn:  # every window due again, its points not cached: warm noise
        conn.execute(t.bucket_profiles.update().values(dirty=True))
    evaluator.drift = DriftCache()
    evaluator.drift.noise = warm
    assert evaluator.run_once(now=T0 + 10 * HOUR) == 3
    assert evaluator.drift.misses == 3 and len(warm) == entries
    assert stored_points(store) == stored


def test_the_noise_cache_keeps_the_latest_entries() -> None:
    cache = NoiseCache(max_entries=2)
    for i in range(3):
        cache[(i,)] = np.full(2, float(i))
    assert list(cache) == [(1,), (2,)]
    cache[(1,)] = np.zeros(2)  # replacing an entry evicts nothing
    assert list(cache) == [(1,), (2,)]
    with pytest.raises(ValueError, match="max_entries must be at least 1, got 0"):
        NoiseCache(max_entries=0)
