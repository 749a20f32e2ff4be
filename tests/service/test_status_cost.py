"""A model's status costs the same however much data the model has: it reads counters the
store maintains, never the tables that grow with the events (issue: status went from 23 ms to
146 ms over a 900k-event soak while every other route stayed flat)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from pyarrow import ipc

from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.settings import load_settings
from watchkeeper.store.state import Store

GROWING = (
    "wk_predictions",
    "wk_actuals",
    "wk_metric_points",
    "wk_bucket_profiles",
    "wk_quarantine",
)


@contextmanager
def statements(engine: sa.Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def _ipc(n: int, start: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "prediction_id": [f"{seed}-{i}" for i in range(n)],
            "timestamp": start + rng.uniform(0, 3000, n),
            "x": rng.normal(0, 1, n),
            "pred": rng.choice(["a", "b"], n),
        }
    )
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def test_status_reads_no_table_that_grows_with_the_data(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    service = IngestService(store, load_settings(data_dir=tmp_path / "data"))
    rng = np.random.default_rng(0)
    service.register(
        "m", pa.table({"x": rng.normal(0, 1, 500), "pred": rng.choice(["a", "b"], 500)}),
        prediction="pred",
    )  # fmt: skip
    assert service.status("m")["last_event_time"] is None
    bodies = [_ipc(400, 1_714_550_400.0 + k * 3600, seed=k) for k in (2, 0, 1)]  # out of order
    for body in bodies:
        service.ingest("m", body, "application/vnd.apache.arrow.stream")
    Processor(store, service.settings).run_once()

    newest = max(max(ipc.open_stream(b).read_all().column("timestamp").to_pylist()) for b in bodies)
    with statements(store.engine) as seen:
        status = service.status("m")
    assert status["events_total"] == 1200 and status["events_pending"] == 0
    assert status["last_event_time"] == pytest.approx(newest, abs=1e-6)
    assert seen, "no statement recorded"
    for statement in seen:
        for table in GROWING:
            assert table not in statement, f"status reads {table}: {statement}"
        if "wk_batches" in statement:  # only the unprocessed backlog, through its index
            assert "processed" in statement, statement
