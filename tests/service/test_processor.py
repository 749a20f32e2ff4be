"""The processor's bucket profiles equal profiles computed directly from the events of each
bucket — whether batches are processed one by one or together, and for days built by merging
their windows' profiles."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import ipc

from watchkeeper.ingest.processor import GROUP_EVENTS, Processor, _groups
from watchkeeper.ingest.service import IngestService
from watchkeeper.profiles import DatasetProfile, profile_table
from watchkeeper.settings import load_settings
from watchkeeper.stats.categorical import CategoricalProfile
from watchkeeper.stats.numeric import NumericProfile
from watchkeeper.store.state import Store

DAY = 86400
START = 1_714_600_000.0  # 2024-05-01 21:46 UTC: the events cross midnight


def events(batch: int, n: int, rng: np.random.Generator) -> pa.Table:
    """Row events over six hours (two days), two regions, some nulls and an unseen plan."""
    return pa.table(
        {
            "prediction_id": [f"b{batch}-{i}" for i in range(n)],
            "timestamp": START + rng.uniform(0, 6 * 3600, n),
            "age": rng.normal(40, 10, n),
            "income": pa.array(rng.normal(5e4, 1e4, n), mask=rng.random(n) < 0.2),
            "plan": rng.choice(["basic", "plus", "pro", "gold"], n),
            "region": rng.choice(["eu", "us"], n),
            "pred": rng.choice(["yes", "no"], n),
            "latency_ms": rng.lognormal(3, 0.5, n),
        }
    )


def assert_same(a: DatasetProfile, b: DatasetProfile) -> None:
    """Every exact part equal (the quantile sketch: the same count)."""
    assert a.rows == b.rows and set(a.columns) == set(b.columns)
    for name, col in a.columns.items():
        other = b.columns[name]
        assert (col.count, col.nulls) == (other.count, other.nulls), name
        if isinstance(col, NumericProfile):
            assert isinstance(other, NumericProfile)
            assert np.array_equal(col.counts, other.counts), name
            assert np.allclose(col.sums, other.sums, rtol=1e-9), name
            assert (col.type_errors, col.non_finite) == (other.type_errors, other.non_finite)
            assert (col.minimum, col.maximum) == (other.minimum, other.maximum), name
            assert col.mean == pytest.approx(other.mean, rel=1e-9), name
            assert col.m2 == pytest.approx(other.m2, rel=1e-7), name
            assert col.kll.n == other.kll.n, name
        else:
            assert isinstance(col, CategoricalProfile) and isinstance(other, CategoricalProfile)
            assert col.counts.tolist() == other.counts.tolist(), name
            assert col.extra == other.extra, name


@pytest.mark.parametrize("window", [3600, 5400, 7 * 3600])  # tiles a day, or not
@pytest.mark.parametrize("together", [True, False])
def test_bucket_profiles_equal_the_unmerged_computation(
    database_url: str,
    open_store: Callable[[str], Store],
    reference: pa.Table,
    tmp_path: Path,
    window: int,
    together: bool,
) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    store = open_store(database_url)
    service = IngestService(store, settings)
    service.register("m", reference, prediction="pred", segments=["region"], window_seconds=window)
    rng = np.random.default_rng(3)
    sent = [events(b, 300, rng) for b in range(5)]
    for table in sent:
        sink = io.BytesIO()
        with ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        result = service.ingest("m", sink.getvalue(), "application/vnd.apache.arrow.stream")
        assert result.accepted == 300
    processor = Processor(store, settings)
    if together:
        assert processor.run_once() == 5
    else:
        while processor.run_once(limit=1):
            pass
    assert processor.batches_processed == 5 and store.pending_events() == 0

    everything = pa.concat_tables(sent)
    times = everything.column("timestamp").to_numpy()
    region = np.asarray(everything.column("region").to_pylist(), dtype=object)
    schema, reference = store.reference("m", "v1")
    for granularity in (window, DAY):
        rows = store.bucket_profiles("m", granularity=granularity)
        buckets = np.floor(times / granularity) * granularity
        expected_keys = {
            (seg, int(b))
            for seg in ("*", "region=eu", "region=us")
            for b in np.unique(buckets[(region == seg[7:]) if seg != "*" else slice(None)])
        }
        assert {(r["segment"], r["bucket"]) for r in rows} == expected_keys
        for row in rows:
            mask = buckets == row["bucket"]
            if row["segment"] != "*":
                mask &= region == row["segment"].split("=")[1]
            part = everything.filter(pa.array(mask))
            direct = profile_table(
                part.rename_columns(["prediction_id", "event_time", *part.column_names[2:]]),
                schema,
                reference.spec,
            )
            stored = DatasetProfile.from_bytes(row["profile"])
            assert_same(stored, direct)
            assert row["events"] == part.num_rows == row["operations"]["count"]


def test_a_pass_decodes_each_batch_once_and_joins_the_labels_that_waited(
    database_url: str,
    open_store: Callable[[str], Store],
    reference: pa.Table,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Indexing, the label join, the lake and the profiles share one decoded table."""
    import json

    settings = load_settings(data_dir=tmp_path / "data")
    store = open_store(database_url)
    service = IngestService(store, settings)
    service.register("m", reference, prediction="pred", segments=["region"])
    rng = np.random.default_rng(4)
    sent = [events(b, 200, rng) for b in range(4)]
    waiting = [{"prediction_id": f"b3-{i}", "label": "yes"} for i in range(50)]
    assert service.actuals("m", json.dumps({"actuals": waiting}).encode())["unmatched"] == 50
    for table in sent:
        sink = io.BytesIO()
        with ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        assert service.ingest("m", sink.getvalue(), "application/vnd.apache.arrow.stream").accepted

    decoded: list[int] = []
    open_stream = ipc.open_stream

    def counting(source: Any, *args: Any, **kwargs: Any) -> Any:
        decoded.append(1)
        return open_stream(source, *args, **kwargs)

    monkeypatch.setattr(ipc, "open_stream", counting)
    assert Processor(store, settings).run_once() == 4
    assert len(decoded) == 4  # once per batch, though labels waited for one of them
    counters = store.counters("m")
    assert counters.get("actuals_unmatched_total") == 0
    assert counters["actuals_total"] + counters.get("actuals_late_total", 0) == 50


def test_groups_are_runs_of_one_version_capped_in_events() -> None:
    def b(i: int, model: str = "m", version: str = "v1", events: int = 10) -> dict[str, Any]:
        return {"id": i, "model": model, "version": version, "events": events}

    batches = [b(1), b(2), b(3, version="v2"), b(4), b(5, events=GROUP_EVENTS), b(6)]
    assert [[x["id"] for x in g] for g in _groups(batches)] == [[1, 2], [3], [4], [5], [6]]


@pytest.mark.slow
def test_the_processor_process_works_the_log_and_is_restarted_when_killed(
    database_url: str, open_store: Callable[[str], Store], reference: pa.Table, tmp_path: Path
) -> None:
    import os
    import signal
    import time

    from watchkeeper.ingest.processor import ProcessorProcess

    settings = load_settings(data_dir=tmp_path / "data", database_url=database_url)
    store = open_store(database_url)
    service = IngestService(store, settings)
    service.register("m", reference, prediction="pred", segments=["region"])
    worker = ProcessorProcess(settings)
    worker.start()
    rng = np.random.default_rng(1)

    def send(batch: int) -> None:
        sink = io.BytesIO()
        table = events(batch, 200, rng)
        with ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        service.ingest("m", sink.getvalue(), "application/vnd.apache.arrow.stream")

    def drained(expected: int) -> None:
        deadline = time.monotonic() + 60
        while store.pending_events() or worker.events_processed < expected:
            assert time.monotonic() < deadline, (store.pending_events(), worker.events_processed)
            time.sleep(0.1)

    try:
        send(0)
        drained(200)
        os.kill(worker._child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while worker.restarts == 0:
            assert time.monotonic() < deadline, "the processor process was not restarted"
            time.sleep(0.1)
        send(1)
        drained(200)  # the new child counts from zero
        assert worker.errors == 0
        daily = store.bucket_profiles("m", granularity=86400, segment="*")
        assert sum(row["events"] for row in daily) == 400
    finally:
        worker.stop()
    assert not worker._child.is_alive()


@pytest.mark.slow
def test_the_processor_process_says_when_it_has_started(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    """``ready`` (and ``watchkeeper_processor_ready``): 0 until the child has opened the store
    and loaded its modules, 0 again when it dies, 1 once restarted."""
    import os
    import signal
    import time

    from prometheus_client.parser import text_string_to_metric_families

    from watchkeeper.ingest.processor import ProcessorProcess
    from watchkeeper.server.metrics import render_metrics

    settings = load_settings(data_dir=tmp_path / "data", database_url=database_url)
    store = open_store(database_url)
    worker = ProcessorProcess(settings)

    def exported() -> float:
        text = render_metrics(store, worker)[0].decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        return families["watchkeeper_processor_ready"].samples[0].value

    def until(value: bool) -> None:
        deadline = time.monotonic() + 60
        while worker.ready is not value:
            assert time.monotonic() < deadline, f"ready never became {value}"
            time.sleep(0.05)

    assert worker.ready is False and exported() == 0
    worker.start()
    try:
        until(True)
        assert exported() == 1
        os.kill(worker._child.pid, signal.SIGKILL)
        worker._child.join(timeout=10)
        assert worker.ready is False  # dead: not ready, whatever its last word was
        until(True)  # restarted
        assert worker.restarts == 1
    finally:
        worker.stop()
