"""The served events as logged are the events ``validate`` accepts from the whole table.

A served request is validated once: its inputs (``ingest.quick`` when they are plainly valid,
else ``validate``), then the model's outputs are added (``ingest.outputs``). The oracle is the
ingest path's own: ``validate`` on the whole event table (inputs and outputs), as the
serving path did before — the same columns, types, order and values. The group commit
(``ingest.writer``) stores an id sent twice once, and replays what an ended process spooled.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tests.service.fixtures import reference_table
from watchkeeper.ingest.bounds import Plausibility
from watchkeeper.ingest.outputs import with_outputs
from watchkeeper.ingest.quick import plain_inputs
from watchkeeper.ingest.registry import target_classes
from watchkeeper.ingest.service import IngestService
from watchkeeper.ingest.spool import Record, Segment
from watchkeeper.ingest.validate import validate
from watchkeeper.ingest.writer import EventWriter
from watchkeeper.settings import Settings
from watchkeeper.store.state import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    settings = Settings(data_dir=tmp_path)
    store = Store(settings.sqlalchemy_url)
    service = IngestService(store, settings)
    reference = reference_table().append_column(
        "label", pa.array(np.where(np.arange(400) % 3 == 0, "yes", "no"))
    )
    service.register("m", reference, prediction="pred", segments="region", target="label")
    return store


def table(columns: dict[str, list[Any]]) -> pa.Table:
    return pa.table({k: pa.array(v) for k, v in columns.items()})


CASES = {
    "plain": {"age": [41.0, 37], "income": [52_000.5, None], "plan": ["basic", "pro"],
              "region": ["eu", "us"]},
    "income missing": {"age": [41.0], "plan": ["plus"], "region": ["us"]},
    "extra input": {"age": [41.0], "plan": ["plus"], "region": ["us"], "other": [1]},
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_one_validation_logs_what_validate_accepts_of_the_whole_table(
    store: Store, case: str
) -> None:
    schema, reference = store.reference("m", "v1")
    classes = target_classes(schema, reference)
    positive = f"score.{classes[-1]}" if classes else None
    columns = CASES[case]
    n = len(next(iter(columns.values())))
    now = time.time()
    ids = [f"id-{i}" for i in range(n)]
    base = {"prediction_id": ids, "timestamp": [now] * n, "version": ["v1"] * n}
    outputs = {
        "prediction": ["yes", "no"][:n],
        "score.no": [0.3, 0.8][:n],
        "score.yes": [0.7, 0.2][:n],
        "latency_ms": [1.5] * n,
        "status": ["ok"] * n,
    }
    plausible = Plausibility()
    whole = validate(table({**base, **columns, **outputs}), schema, now=now,
                     plausible=plausible, positive_score=positive).accepted  # fmt: skip
    quick = plain_inputs(ids, now, "v1", columns, schema)
    assert quick is not None
    inputs = validate(table({**base, **columns}), schema, now=now, plausible=plausible)
    assert quick.equals(inputs.accepted), (quick.schema, inputs.accepted.schema)
    logged = with_outputs(quick, schema, outputs, inputs=[*base, *columns],
                          positive_score=positive, plausible=plausible)  # fmt: skip
    assert logged is not None
    assert logged.schema == whole.schema
    assert logged.equals(whole)


@pytest.mark.parametrize(
    "columns",
    [
        {"age": ["41"], "plan": ["plus"], "region": ["us"]},  # text for a number: validate's
        {"age": [float("nan")], "plan": ["plus"], "region": ["us"]},
        {"age": [True], "plan": ["plus"], "region": ["us"]},
        {"plan": ["plus"], "region": ["us"]},  # age is required
        {"age": [41.0], "plan": ["NA"], "region": ["us"]},
        {"age": [41.0], "plan": ["plus"], "region": ["us"], "status": ["error"]},
    ],
)
def test_anything_not_plainly_valid_goes_through_validate(
    store: Store, columns: dict[str, list[Any]]
) -> None:
    schema = store.reference("m", "v1")[0]
    assert plain_inputs(["a"], time.time(), "v1", columns, schema) is None


def test_an_output_the_store_cannot_hold_asks_for_the_whole_validation(store: Store) -> None:
    schema = store.reference("m", "v1")[0]
    columns = {"age": [41.0], "plan": ["plus"], "region": ["us"]}
    quick = plain_inputs(["a"], time.time(), "v1", columns, schema)
    assert quick is not None
    for outputs in ({"prediction": ["x" * 100_000]}, {"prediction": ["a\x00b"]},
                    {"prediction": ["yes"], "latency_ms": [1e12]}):  # fmt: skip
        assert with_outputs(quick, schema, outputs, inputs=list(columns),
                            positive_score=None, plausible=Plausibility()) is None  # fmt: skip


def events(store: Store, ids: list[str]) -> Record:
    schema = store.reference("m", "v1")[0]
    n = len(ids)
    columns = {"age": [40.0] * n, "plan": ["plus"] * n, "region": ["eu"] * n}
    accepted = plain_inputs(ids, time.time(), "v1", columns, schema)
    assert accepted is not None
    return Record("m", "v1", accepted)


def test_the_group_commit_stores_an_id_sent_twice_once(store: Store, tmp_path: Path) -> None:
    writer = EventWriter(store, tmp_path / "spool", interval=0.2)
    writer.start()
    try:
        writer.put(events(store, ["a", "b"]))
        writer.put(events(store, ["b", "c"]))  # the same commit: b once
        assert writer.flush(10)
        writer.put(events(store, ["c", "d"]))  # a later commit: c is known
        assert writer.flush(10)
    finally:
        writer.stop()
    counts = store.counters("m")
    assert counts["events_total"] == 4 and counts["duplicates_total"] == 2
    assert not list((tmp_path / "spool").iterdir())  # all committed: no segment left


def test_a_spool_left_by_an_ended_process_is_replayed_once(store: Store, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    left = Segment.create(spool)  # as a killed process leaves it: written, never committed
    for ids in (["a", "b"], ["c"]):
        left.append(events(store, ids).encode())
    left.append(events(store, ["d"]).encode()[:-3])  # cut short: its request had no answer
    left.close()
    for _ in range(2):  # the second start finds nothing to replay
        writer = EventWriter(store, spool)
        writer.start()
        assert writer.flush(10)
        writer.stop()
    assert store.counters("m")["events_total"] == 3
    assert store.counters("m").get("duplicates_total", 0) == 0
    assert not list(spool.iterdir())


def test_a_full_buffer_makes_a_request_wait_then_503_and_keeps_what_was_answered(
    tmp_path: Path,
) -> None:
    """With the database locked nothing can be committed: requests are answered (spooled)
    up to ``limit`` waiting events, the next one waits ``wait_seconds`` and is refused with a
    503 (its events not kept); once the lock is gone what was answered is committed."""
    import sqlite3

    from watchkeeper.store.faults import StoreUnavailable

    settings = Settings(data_dir=tmp_path)
    store = Store(settings.sqlalchemy_url)
    IngestService(store, settings).register(
        "m", reference_table(), prediction="pred", segments="region"
    )
    writer = EventWriter(store, tmp_path / "spool", interval=0.01, limit=4, wait_seconds=0.3)
    writer.start()
    lock = sqlite3.connect(tmp_path / "state.db", isolation_level=None, timeout=30)
    try:
        lock.execute("BEGIN IMMEDIATE")
        writer.put(events(store, ["a", "b"]))
        writer.put(events(store, ["c", "d"]))
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="wait to be committed"):
            writer.put(events(store, ["e"]))
        assert 0.3 <= time.monotonic() - started < 5
        assert writer.pending() == 4
    finally:
        lock.rollback()
        lock.close()
    try:
        assert writer.flush(60)
    finally:
        writer.stop()
    assert store.counters("m")["events_total"] == 4


def test_serving_log_takes_spool_or_sync(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"serving_log[\s\S]*expected spool or sync, got 'fast'"):
        Settings(data_dir=tmp_path, serving_log="fast")
    assert Settings(data_dir=tmp_path, serving_log="sync").serving_log == "sync"
