"""What a prediction batch costs the database, counted: concurrent batches share commits, a
batch reads no model state the service has read before (until it changes), and the processor
indexes a run of batches in one transaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from tests.service.test_status_cost import _ipc, statements
from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.ingest.writer import EventWriter
from watchkeeper.settings import load_settings
from watchkeeper.store import tables as t
from watchkeeper.store.promotion import promote
from watchkeeper.store.state import Store

ARROW = "application/vnd.apache.arrow.stream"
NOW = time.time() - 120


@contextmanager
def commits(engine: sa.Engine) -> Iterator[list[int]]:
    seen: list[int] = []

    def record(conn: Any) -> None:
        seen.append(1)

    sa.event.listen(engine, "commit", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "commit", record)


def service_of(store: Store, tmp_path: Path) -> IngestService:
    service = IngestService(store, load_settings(data_dir=tmp_path / "data"))
    rng = np.random.default_rng(0)
    reference = pa.table({"x": rng.normal(0, 1, 500), "pred": rng.choice(["a", "b"], 500)})
    service.register("m", reference, prediction="pred")
    service.register("m", reference, prediction="pred", version="v2", champion=False)
    return service


def test_concurrent_batches_share_commits_and_each_is_answered_once_committed(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    """Eight batches posted while a commit runs: the requests wait for their commit (the
    log holds their events when they return) and take two commits, not eight."""
    store = open_store(database_url)
    service = service_of(store, tmp_path)
    service.writer = EventWriter(store, tmp_path / "spool")
    service.writer.start()
    bodies = [_ipc(50, NOW, seed=k) for k in range(8)]
    answers: list[Any] = [None] * 8
    try:
        service.ingest("m", _ipc(5, NOW, seed=100), ARROW)  # the id filter filled, warm
        with commits(store.engine) as seen:
            with store.write():  # a commit in progress: the batches queue behind it
                threads = [
                    threading.Thread(
                        target=lambda k=k: answers.__setitem__(
                            k, service.ingest("m", bodies[k], ARROW)
                        )
                    )
                    for k in range(8)
                ]
                for thread in threads:
                    thread.start()
                deadline = time.monotonic() + 30
                while service.writer.pending() < 8 * 50 and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert all(a is None for a in answers)  # nobody answered before the commit
            for thread in threads:
                thread.join(30)
        assert [(a.accepted, a.duplicates) for a in answers] == [(50, 0)] * 8
        assert len(seen) <= 1 + 2  # the held transaction, then at most two group commits
        assert store.counters("m")["events_total"] == 8 * 50 + 5
        again = service.ingest("m", bodies[3], ARROW)  # a retry: stored already
        assert (again.accepted, again.duplicates) == (0, 50)
    finally:
        service.writer.stop()


def _model_reads(statement: str) -> bool:
    text = statement.lower()
    return text.lstrip().startswith("select") and any(
        f"from {name}" in text for name in ("wk_models", "wk_versions", "wk_batches")
    )


def test_a_batch_reads_no_model_state_until_the_model_changes(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    service = service_of(store, tmp_path)
    service.ingest("m", _ipc(20, NOW, seed=0), ARROW)  # reads the model, its version, backlog
    with statements(store.engine) as seen:
        for k in range(1, 6):
            assert service.ingest("m", _ipc(20, NOW, seed=k), ARROW).accepted == 20
    assert [s for s in seen if _model_reads(s)] == []

    promote(store, "m", "v2")  # a change of this process: read again at once
    body = _ipc(20, NOW, seed=9)
    assert service.ingest("m", body, ARROW).accepted == 20
    versions = pa.ipc.open_stream(store.pending_batches(100)[-1]["payload"]).read_all()
    assert store.pending_batches(100)[-1]["version"] == "v2" and versions.num_rows == 20


def test_the_processor_indexes_a_run_of_batches_in_one_statement_and_transaction(
    database_url: str, open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    store = open_store(database_url)
    service = service_of(store, tmp_path)
    for k in range(6):
        service.ingest("m", _ipc(30, NOW, seed=k), ARROW)
    processor = Processor(store, service.settings)
    with commits(store.engine) as committed:
        assert processor.run_once() == 6
    assert len(committed) <= 2  # the index, then the profiles (with the batches marked)
    with store.engine.connect() as conn:
        indexed = conn.execute(sa.text("SELECT count(*) FROM wk_predictions")).scalar()
    assert indexed == 6 * 30


def test_a_commit_builds_no_counter_statement_and_updates_its_counters_at_once(
    database_url: str,
    open_store: Callable[[str], Store],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Building a counter's ``UPDATE`` (and its cache key) cost more than running it: the
    statements are built once, and a write's counters are one ``UPDATE`` run many times."""
    store = open_store(database_url)
    service = service_of(store, tmp_path)
    assert service.ingest("m", _ipc(20, NOW, seed=0), ARROW).accepted == 20  # counters exist

    def built(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a counter statement built per call")

    monkeypatch.setattr(t.counters, "update", built)
    monkeypatch.setattr(t.counters, "insert", built)
    monkeypatch.setattr(t.counters, "select", built)
    with statements(store.engine) as seen:
        assert service.ingest("m", _ipc(20, NOW, seed=1), ARROW).accepted == 20
        with store.write() as conn:
            store.add_counts(conn, "m", {"events_total": 1, "violations_total": 2, "new": 3})
            store.raise_counts(conn, "m", {"newest": 7})
    counters = [s for s in seen if "counters" in s]
    assert len([s for s in counters if s.lstrip().upper().startswith("UPDATE")]) == 3, counters
    assert store.counters("m")["events_total"] == 41
    assert store.counters("m")["violations_total"] >= 2
    assert store.counters("m")["new"] == 3 and store.counters("m")["newest"] == 7
