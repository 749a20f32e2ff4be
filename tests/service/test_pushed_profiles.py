"""A window profile pushed whole (``IngestService.log_profile``, the route behind
``Client.log_profile``) is evaluated like the same rows logged as predictions; a profile not
on the version's frozen spec is refused, naming the column."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from pyarrow import ipc

import watchkeeper
from watchkeeper.errors import InputError, ProfileMismatchError
from watchkeeper.evaluation.evaluate import Evaluator
from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.profiles import DatasetProfile
from watchkeeper.settings import load_settings
from watchkeeper.store import tables as t
from watchkeeper.store.state import NotFoundError, Store

HOUR = 3600
T0 = 1_714_554_000.0  # an hour boundary
OPERATIONAL = {"error_rate", "latency_p50", "latency_p90", "latency_p95", "latency_p99"}


def reference(n: int = 4000) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table(
        {
            "x": rng.normal(0, 1, n),
            "w": pa.array(rng.exponential(2.0, n), mask=rng.random(n) < 0.05),  # optional
            "plan": rng.choice(["basic", "plus", "pro"], n).tolist(),
            "pred": rng.choice(["a", "b"], n).tolist(),
        }
    )


def scored(hour: int, n: int = 1500) -> pa.Table:
    """A batch job's output: the features and the prediction of each row, for one hour."""
    rng = np.random.default_rng(100 + hour)
    return pa.table(
        {
            "x": rng.normal(0.6 * hour, 1, n),  # drifts from the second hour on
            "w": pa.array(rng.exponential(2.0, n), mask=rng.random(n) < 0.1),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.2, 0.3, 0.5]).tolist(),
            "pred": rng.choice(["a", "b"], n).tolist(),
        }
    )


def as_events(table: pa.Table, hour: int) -> bytes:
    n = table.num_rows
    events = table.append_column(
        "prediction_id", pa.array([f"h{hour}-{i}" for i in range(n)])
    ).append_column("timestamp", pa.array(T0 + hour * HOUR + np.linspace(0, HOUR - 1, n)))
    sink = io.BytesIO()
    with ipc.new_stream(sink, events.schema) as writer:
        writer.write_table(events)
    return sink.getvalue()


def points(store: Store, model: str) -> dict[tuple[float, str, str], tuple[Any, Any]]:
    mp = t.metric_points.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.metric_points).where((mp.model == model) & (mp.window_seconds == HOUR))
        ).mappings()
        return {
            (r["window_start"], r["metric"], r["feature"]): (r["value"], r["detail"])
            for r in rows
            if r["metric"] not in OPERATIONAL
        }


def test_a_pushed_profile_is_evaluated_as_the_logged_rows(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    service = IngestService(store, load_settings(data_dir=tmp_path / "data"))
    for model in ("logged", "pushed"):
        service.register(model, reference(), prediction="pred", window_seconds=HOUR)
    schema, ref = store.reference("pushed", "v1")
    for hour in range(3):
        rows = scored(hour)
        service.ingest("logged", as_events(rows, hour), "application/vnd.apache.arrow.stream")
        # the job's profile: two partitions profiled apart and merged, as on Spark
        half = rows.num_rows // 2
        parts = [
            watchkeeper.profile_table(part, schema, ref.spec)
            for part in (rows.slice(0, half), rows.slice(half))
        ]
        answer = service.log_profile(
            "pushed", parts[0].merge(parts[1]).to_bytes(), T0 + hour * HOUR + 1234.5
        )
        assert answer["window_start"] == T0 + hour * HOUR and answer["rows"] == rows.num_rows
    Processor(store, service.settings).run_once()
    evaluator = Evaluator(store)
    assert evaluator.run_once(now=T0 + 10 * HOUR) == 6

    logged, pushed = points(store, "logged"), points(store, "pushed")
    assert logged.keys() == pushed.keys()
    assert {m for _, m, f in logged if f == "x"} >= {"drift_statistic"}
    for key, (value, detail) in logged.items():
        other_value, other_detail = pushed[key]
        assert other_value == pytest.approx(value, rel=1e-9, nan_ok=True), key
        assert (other_detail or {}).get("drifted") == (detail or {}).get("drifted"), key
    drifted = [logged[(T0 + h * HOUR, "drift_statistic", "x")][1]["drifted"] for h in range(3)]
    assert drifted == [False, True, True]
    # the stored day profiles agree too: the pushed windows merged into their day
    day = {
        m: DatasetProfile.from_bytes(store.bucket_profiles(m, granularity=86400)[0]["profile"])
        for m in ("logged", "pushed")
    }
    assert day["pushed"].rows == day["logged"].rows == 4500
    assert np.array_equal(day["pushed"]["x"].counts, day["logged"]["x"].counts)


def test_a_profile_off_the_frozen_spec_is_refused(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    service = IngestService(store, load_settings(data_dir=tmp_path / "data"))
    service.register("m", reference(), prediction="pred", window_seconds=HOUR)
    rows = scored(0)
    own_bins = watchkeeper.profile(rows)  # bins frozen from the batch, not the reference
    with pytest.raises(ProfileMismatchError, match="column 'x' has other bins"):
        service.log_profile("m", own_bins.to_bytes(), T0)
    with pytest.raises(InputError, match="not a watchkeeper profile"):
        service.log_profile("m", b"x,y\n1,2\n", T0)
    schema, ref = store.reference("m", "v1")
    good = watchkeeper.profile_table(rows, schema, ref.spec).to_bytes()
    with pytest.raises(NotFoundError, match="no version 'v9'"):
        service.log_profile("m", good, T0, version="v9")
    with pytest.raises(NotFoundError, match="'nope' is not registered"):
        service.log_profile("nope", good, T0)
    with pytest.raises(InputError, match="window"):
        service.log_profile("m", good, float("nan"))
    assert store.bucket_profiles("m", granularity=HOUR) == []  # nothing refused was stored
