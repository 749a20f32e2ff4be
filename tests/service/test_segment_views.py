"""A segment's view (``segment=country=DE``) does not test the segment's own column for drift:
its values differ from the whole reference's by construction."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyarrow import ipc

from watchkeeper.evaluation.evaluate import Evaluator, series
from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.settings import load_settings
from watchkeeper.store.state import Store

HOUR = 3600
T0 = 1_714_554_000.0  # an hour boundary


def _table(n: int, seed: int, *, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "x": rng.normal(shift, 1, n),
            "country": rng.choice(["DE", "FR", "US"], n),
            "pred": rng.choice(["a", "b"], n),
        }
    )


def _ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def test_a_segment_view_does_not_drift_on_its_own_column(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    service = IngestService(store, load_settings(data_dir=tmp_path / "data"))
    service.register(
        "m", _table(6000, 0), prediction="pred", segments=["country"], window_seconds=HOUR
    )
    events = _table(3000, 1, shift=1.0)  # x drifts in every country; country's mix does not
    n = events.num_rows
    events = events.append_column("prediction_id", pa.array([f"e{i}" for i in range(n)]))
    events = events.append_column(
        "timestamp", pa.array(T0 + np.random.default_rng(2).uniform(0, HOUR - 1, n))
    )
    service.ingest("m", _ipc(events), "application/vnd.apache.arrow.stream")
    Processor(store, service.settings).run_once()
    assert Evaluator(store).run_once(now=T0 + 3 * HOUR) >= 1

    def tested(segment: str) -> set[str]:
        return {
            f
            for f in ("x", "country")
            if series(store, "m", "drift_statistic", feature=f, segment=segment)
        }

    assert tested("*") == {"x", "country"}
    for country in ("DE", "FR", "US"):
        segment = f"country={country}"
        assert tested(segment) == {"x"}, segment
        (share,) = series(store, "m", "drifted_share", segment=segment)
        assert share["detail"]["checked"] == 1 and share["value"] == 1.0


def test_one_segment_name_is_one_column(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    service = IngestService(store, load_settings(data_dir=tmp_path / "data"))
    service.register("m", _table(500, 0), prediction="pred", segments="country")
    assert service.status("m")["segments"] == ["country"]
