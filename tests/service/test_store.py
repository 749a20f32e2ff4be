"""The state store's contract, on SQLite and on PostgreSQL: the same calls, the same answers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from watchkeeper.ingest.accept import log_batch
from watchkeeper.ingest.events import from_ipc
from watchkeeper.ingest.index import index_batch
from watchkeeper.profiles import profile_reference
from watchkeeper.schema import Schema
from watchkeeper.store import tables as t
from watchkeeper.store.state import ConflictError, NotFoundError, Store

SCHEMA = {"version": 1, "columns": [{"name": "age", "type": "numeric", "role": "feature"}]}
PROFILE = profile_reference(pa.table({"age": [1.0, 2.0, 3.0]}), Schema.from_dict(SCHEMA)).to_bytes()
T0 = 1_714_557_600.0


@pytest.fixture
def store(database_url: str, open_store: Callable[[str], Store]) -> Store:
    return open_store(database_url)


def new_model(store: Store, name: str = "churn", *, version: str | None = "v1") -> str:
    store.create_model(name, window_seconds=3600, label_horizon_seconds=86400, retention_days=30)
    if version is not None:
        store.add_version(
            name,
            version,
            schema=SCHEMA,
            reference_profile=PROFILE,
            reference_rows=10,
            reference_sample=None,
        )
    return name


def events(ids: list[str] | set[str]) -> pa.Table:
    """Validated events of these ids (sorted), one second apart from T0."""
    ordered = sorted(ids)
    return pa.table(
        {
            "prediction_id": pa.array(ordered, pa.string()),
            "event_time": [T0 + i for i in range(len(ordered))],
        }
    )


def accept(store: Store, model: str, ids: list[str], version: str = "v1") -> tuple[int, set[str]]:
    """What accepting a batch does once its events are validated (``ingest.accept``)."""
    return log_batch(store, model, version, events(ids))


def index_all(store: Store) -> None:
    """What the processor does first with each logged batch."""
    for batch in store.pending_batches(limit=1000):
        index_batch(store, batch["id"])


def stored_ids(store: Store, model: str) -> list[str]:
    with store.engine.connect() as conn:
        q = sa.select(t.predictions.c.prediction_id).where(t.predictions.c.model == model)
        return sorted(conn.execute(q).scalars())


def batch_count(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.batches)).scalar_one())


# ------------------------------------------------------------------------------ models
def test_create_model_then_conflict_and_not_found(store: Store) -> None:
    info = store.create_model(
        "churn", window_seconds=600, label_horizon_seconds=7200.0, retention_days=7.5,
        segments=["region", "plan"],
    )  # fmt: skip
    assert store.model("churn") == info
    assert info.segments == ["region", "plan"] and info.champion is None
    with pytest.raises(ConflictError, match="exists already") as exc:
        store.create_model("churn", window_seconds=1, label_horizon_seconds=1, retention_days=1)
    assert exc.value.http_status == 409
    with pytest.raises(NotFoundError, match="'fraud' is not registered") as missing:
        store.model("fraud")
    assert missing.value.http_status == 404
    new_model(store, "aardvark", version=None)
    assert [m.name for m in store.models()] == ["aardvark", "churn"]


def test_add_version_sets_champion_unless_told_not_to(store: Store) -> None:
    new_model(store)
    assert store.model("churn").champion == "v1"
    common: dict[str, Any] = {"schema": SCHEMA, "reference_profile": b"p", "reference_rows": 3}
    store.add_version("churn", "v2", reference_sample=b"PAR1", champion=False, **common)
    assert store.model("churn").champion == "v1"
    store.add_version("churn", "v3", reference_sample=None, **common)
    assert store.model("churn").champion == "v3"
    assert [v["version"] for v in store.versions("churn")] == ["v1", "v2", "v3"]

    v1 = store.version("churn", "v1")
    assert v1["schema"] == SCHEMA and v1["reference_rows"] == 10
    assert bytes(v1["reference_profile"]) == PROFILE  # binary round trip
    assert bytes(store.version("churn", "v2")["reference_sample"]) == b"PAR1"
    with pytest.raises(ConflictError, match="version 'v1' already"):
        store.add_version("churn", "v1", reference_sample=None, **common)
    with pytest.raises(NotFoundError):
        store.add_version("fraud", "v1", reference_sample=None, **common)
    with pytest.raises(NotFoundError, match="no version 'v9'"):
        store.version("churn", "v9")


# ------------------------------------------------------------------------------ ingest
def test_accept_batch_stores_and_a_retry_stores_nothing(
    store: Store, database_url: str, open_store: Callable[[str], Store]
) -> None:
    model = new_model(store)
    ids = [f"p{i}" for i in range(7)]
    assert accept(store, model, ids) == (7, set())
    assert store.counters(model)["events_total"] == 7
    [batch] = store.pending_batches()
    assert batch["events"] == 7 and not batch["processed"]
    assert from_ipc(bytes(batch["payload"])).column("prediction_id").to_pylist() == sorted(ids)
    # a retry before the batch is indexed, after, and seen by a process that starts later
    assert accept(store, model, ids) == (0, set(ids))
    index_all(store)
    assert stored_ids(store, model) == sorted(ids)
    assert accept(store, model, ids) == (0, set(ids))
    later = open_store(database_url)
    assert accept(later, model, ids[:3]) == (0, set(ids[:3]))
    assert batch_count(store) == 1 and store.counters(model)["events_total"] == 7
    assert store.pending_events() == 7


def test_mixed_batch_stores_only_new_ids_with_a_rebuilt_payload(store: Store) -> None:
    model = new_model(store)
    accept(store, model, ["a", "b"])
    mixed = ["a", "c", "b", "d"]
    stored, dupes = accept(store, model, mixed)
    assert (stored, dupes) == (2, {"a", "b"})
    index_all(store)
    assert stored_ids(store, model) == ["a", "b", "c", "d"]
    second = store.pending_batches()[1]
    assert second["events"] == 2
    assert from_ipc(bytes(second["payload"])).column("prediction_id").to_pylist() == ["c", "d"]
    assert store.counters(model)["events_total"] == store.pending_events() == 4


def test_prediction_ids_are_scoped_per_model(store: Store) -> None:
    new_model(store, "churn")
    new_model(store, "fraud")
    assert accept(store, "churn", ["x"])[0] == 1
    assert accept(store, "fraud", ["x"])[0] == 1
    index_all(store)
    assert stored_ids(store, "churn") == stored_ids(store, "fraud") == ["x"]
    assert store.counters("churn") == {"events_total": 1}


def test_concurrent_retries_of_one_batch_store_it_once(store: Store) -> None:
    model = new_model(store)
    ids = [f"c{i}" for i in range(300)]
    results: list[tuple[int, set[str]]] = []

    def send() -> None:
        results.append(accept(store, model, ids))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(r[0] for r in results) == [0, 0, 0, 300]
    index_all(store)
    assert stored_ids(store, model) == sorted(ids) and batch_count(store) == 1


def test_indexing_drops_ids_another_process_stored_first(
    database_url: str, open_store: Callable[[str], Store]
) -> None:
    """Each process knows the ids it has seen; an overlap between two replicas is found
    when the later batch is indexed, and moved from events_total to duplicates_total."""
    a, b = open_store(database_url), open_store(database_url)
    model = new_model(a)
    assert accept(b, model, ["z"])[0] == 1  # b is running
    assert accept(a, model, ["a", "b", "c"])[0] == 3
    assert accept(b, model, ["b", "c", "d"])[0] == 3
    zero, first, second = a.pending_batches()
    for batch in (zero, first):
        assert index_batch(a, batch["id"]) is not None
    rewritten = index_batch(b, second["id"])
    assert rewritten is not None
    assert rewritten.table.column("prediction_id").to_pylist() == ["d"]
    assert a.pending_batches()[2]["events"] == 1
    assert a.counters(model) == {"events_total": 5, "duplicates_total": 2}
    # again, by either process (a processor that crashed after the commit): no change
    again = index_batch(a, second["id"])
    assert again is not None and again.table.num_rows == 1
    assert index_batch(b, second["id"]) is not None
    assert a.counters(model) == {"events_total": 5, "duplicates_total": 2}
    assert stored_ids(a, model) == ["a", "b", "c", "d", "z"]
    # indexed batches are known to a store that starts later
    c = open_store(database_url)
    assert accept(c, model, ["d", "e"]) == (1, {"d"})


def test_two_stores_on_one_database_store_overlapping_batches_once(
    database_url: str, open_store: Callable[[str], Store]
) -> None:
    """Two processes (e.g. two replicas) on one database: overlapping retries race. What
    each accepts may overlap; once the log is indexed, every id is stored and counted once."""
    a, b = open_store(database_url), open_store(database_url)
    model = new_model(a)
    errors: list[BaseException] = []
    accepted: list[int] = []

    def send(store: Store, start: int) -> None:
        try:
            for k in range(start, start + 20):
                ids = [f"o{k}-{i}" for i in range(50)] + [f"o{k + 1}-{i}" for i in range(50)]
                accepted.append(accept(store, model, ids)[0])
        except BaseException as exc:
            errors.append(exc)

    def index(store: Store) -> None:
        try:
            for batch in a.pending_batches(limit=1000):
                index_batch(store, batch["id"])
        except BaseException as exc:
            errors.append(exc)

    for work in (send, index):
        threads = [threading.Thread(target=work, args=(s, 0)[: 2 if work is send else 1])
                   for s in (a, b)]  # fmt: skip
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert not errors, errors
    assert len(stored_ids(a, model)) == 21 * 50
    counters = a.counters(model)
    assert counters["events_total"] == 21 * 50 == a.pending_events()
    # every id sent beyond the first time: found on accept, or when its batch was indexed
    assert counters["duplicates_total"] == 2 * 20 * 100 - 21 * 50
    logged = [
        pid
        for batch in a.pending_batches(limit=1000)
        for pid in from_ipc(bytes(batch["payload"])).column("prediction_id").to_pylist()
    ]
    assert sorted(logged) == stored_ids(a, model)  # each id in exactly one batch


# ------------------------------------------------------------------------------ quarantine
def test_quarantine_add_list_and_page(store: Store) -> None:
    new_model(store, "churn")
    new_model(store, "fraud")
    items = [
        {
            "prediction_id": f"q{i}" if i else None,
            "event": {"prediction_id": f"q{i}" if i else None, "age": "x", "nan": "nan"},
            "reasons": [{"field": "age", "problem": "expected a number, got 'x'"}],
        }
        for i in range(5)
    ]
    assert store.quarantine_add("churn", items) == 5
    assert store.quarantine_add("fraud", items[:1]) == 1
    assert store.quarantine_add("churn", []) == 0
    listed = store.quarantine("churn")
    assert [q["prediction_id"] for q in listed] == [None, "q1", "q2", "q3", "q4"]
    assert listed[1]["event"] == items[1]["event"] and listed[1]["reasons"] == items[1]["reasons"]
    assert {q["model"] for q in listed} == {"churn"}
    page = store.quarantine("churn", limit=2, offset=2)
    assert [q["prediction_id"] for q in page] == ["q2", "q3"]
    assert store.quarantine("churn", limit=10, offset=5) == []
    assert store.counters("churn") == {"quarantined_total": 5}
    assert store.counters("fraud") == {"quarantined_total": 1}


# ------------------------------------------------------------------------------ counters
def test_counters_accumulate_per_model_and_hold_64_bit_values(store: Store) -> None:
    new_model(store, "churn")
    store.bump("churn", {"duplicates_total": 2, "actuals_total": 1})
    store.bump("churn", {"duplicates_total": 3})
    store.bump("fraud", {"duplicates_total": 2**40})
    assert store.counters("churn") == {"duplicates_total": 5, "actuals_total": 1}
    assert store.counters("fraud") == {"duplicates_total": 2**40}
    assert store.counters("nobody") == {}


# ------------------------------------------------------------------------------ processing
Merge = Callable[[Callable[[dict[str, Any]], dict[str, Any] | None]], list[dict[str, Any]]]


def apply_batch(store: Store, batch_id: int, merge: Merge) -> bool:
    """The processor's last step (``ingest.buckets.apply_buckets``) on the store's own steps,
    with ``merge(read)`` standing for the merge of the stored and the new profiles."""

    def body(conn: sa.Connection) -> bool:
        if not store.claim_unprocessed(conn, [batch_id]):
            return False
        for row in merge(lambda key: store.bucket_profile(conn, key, lock=True)):
            store.put_bucket_profile(conn, row)
        store.mark_processed(conn, [batch_id])
        return True

    return store.write(body)


def _merge_adding(n: int, calls: list[int], bucket: int = 7200) -> Merge:
    key = {"model": "churn", "version": "v1", "segment": "", "granularity": 3600, "bucket": bucket}

    def merge(read: Callable[[dict[str, Any]], dict[str, Any] | None]) -> list[dict[str, Any]]:
        calls.append(n)
        old = read(key)
        events = n + (old["events"] if old else 0)
        ops = {"count": events}
        return [{**key, "events": events, "profile": b"p" * events, "operations": ops}]

    return merge


def test_apply_batch_marks_processed_exactly_once(store: Store) -> None:
    model = new_model(store)
    accept(store, model, ["a", "b", "c"])
    accept(store, model, ["d", "e"])
    first, second = store.pending_batches()
    assert first["id"] < second["id"] and store.pending_events() == 5
    assert [b["id"] for b in store.pending_batches(limit=1)] == [first["id"]]

    calls: list[int] = []
    apply_batch(store, first["id"], _merge_adding(3, calls))
    apply_batch(store, first["id"], _merge_adding(3, calls))  # a second run: no effect
    assert calls == [3]
    assert [b["id"] for b in store.pending_batches()] == [second["id"]]
    assert store.pending_events() == 2

    apply_batch(store, second["id"], _merge_adding(2, calls))  # merges into the same bucket
    apply_batch(store, second["id"], _merge_adding(2, calls))
    assert calls == [3, 2]
    [row] = store.bucket_profiles(model, granularity=3600)
    assert row["events"] == 5 and row["operations"] == {"count": 5}
    assert bytes(row["profile"]) == b"ppppp"
    assert store.pending_batches() == [] and store.pending_events() == 0

    with store.write() as conn:  # the retention sweep deletes processed batches
        conn.execute(t.batches.delete().where(t.batches.c.id == first["id"]))
    apply_batch(store, first["id"], _merge_adding(3, calls))  # a stale processor: no effect
    assert calls == [3, 2] and store.bucket_profiles(model, granularity=3600)[0]["events"] == 5


def test_two_processors_on_one_database_count_every_batch_once(
    database_url: str, open_store: Callable[[str], Store]
) -> None:
    """Two processes work through the same log: no batch is lost or applied twice."""
    a, b = open_store(database_url), open_store(database_url)
    model = new_model(a)
    for k in range(30):
        ids = [f"b{k}-{i}" for i in range(k % 3 + 1)]
        accept(a, model, ids)
    batches = a.pending_batches(limit=100)
    calls: list[int] = []
    errors: list[BaseException] = []

    def process(store: Store) -> None:
        for batch in batches:  # both walk the whole log, as two processors would
            for _attempt in range(20):  # a failed transaction is retried, as the loop does
                try:
                    apply_batch(store, batch["id"], _merge_adding(batch["events"], calls))
                    break
                except sa.exc.DBAPIError as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=process, args=(s,)) for s in (a, b)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    [row] = a.bucket_profiles(model, granularity=3600)
    assert row["events"] == sum(b["events"] for b in batches) == 60, errors
    assert a.pending_events() == 0


def test_apply_batch_rolls_back_when_merge_fails(store: Store) -> None:
    model = new_model(store)
    accept(store, model, ["a"])
    [batch] = store.pending_batches()

    def broken(read: Callable[..., Any]) -> list[dict[str, Any]]:
        raise RuntimeError("profile failed")

    with pytest.raises(RuntimeError):
        apply_batch(store, batch["id"], broken)
    assert store.pending_events() == 1  # still pending: retried later
    calls: list[int] = []
    apply_batch(store, batch["id"], _merge_adding(1, calls))
    assert calls == [1] and store.pending_events() == 0


def test_bucket_profiles_filters_and_orders(store: Store) -> None:
    model = new_model(store)
    store.add_version(
        model, "v2", schema=SCHEMA, reference_profile=b"", reference_rows=0, reference_sample=None
    )
    base = {"model": model, "events": 1, "profile": b"x", "operations": {}}
    wanted = [
        {**base, "version": v, "segment": s, "granularity": g, "bucket": b}
        for v in ("v1", "v2")
        for s in ("*", "region=eu")
        for g, b in ((3600, 10800), (3600, 0), (3600, 3600), (86400, 0))
    ]
    accept(store, model, ["a"])
    [batch] = store.pending_batches()
    apply_batch(store, batch["id"], lambda read: wanted)

    def keys(**kw: Any) -> list[tuple[str, str, int]]:
        found = store.bucket_profiles(model, **kw)
        return [(r["version"], r["segment"], r["bucket"]) for r in found]

    hourly = store.bucket_profiles(model, granularity=3600)
    assert len(hourly) == 12 and [r["bucket"] for r in hourly] == sorted(
        r["bucket"] for r in hourly
    )
    assert len(store.bucket_profiles(model, granularity=86400)) == 4
    assert keys(granularity=3600, version="v2", segment="*") == [
        ("v2", "*", 0), ("v2", "*", 3600), ("v2", "*", 10800),
    ]  # fmt: skip
    assert keys(granularity=3600, start=3600, end=10800, segment="region=eu", version="v1") == [
        ("v1", "region=eu", 3600)
    ]
    assert store.bucket_profiles("fraud", granularity=3600) == []
    assert store.last_event_time(model) is None  # known once the batch is indexed
    accept(store, model, ["b"])
    index_all(store)
    assert store.last_event_time(model) == 1_714_557_600.0
    assert store.last_event_time("fraud") is None


def test_a_batch_id_reused_after_retention_is_indexed_again(
    database_url: str, open_store: Callable[[str], Store]
) -> None:
    """Once retention empties the log, SQLite hands out the same batch ids again: the new
    batch must be indexed, not taken for the old one."""
    store = open_store(database_url)
    model = new_model(store)
    calls: list[int] = []
    for n, ids in enumerate((["a", "b"], ["c", "d"])):
        accept(store, model, ids)
        [batch] = store.pending_batches()
        assert index_batch(store, batch["id"]) is not None
        apply_batch(store, batch["id"], _merge_adding(2, calls, bucket=7200 * (n + 1)))
        with store.write() as conn:  # the retention sweep
            conn.execute(t.batches.delete().where(t.batches.c.processed.is_(True)))
    assert stored_ids(store, model) == ["a", "b", "c", "d"]


def test_the_ids_of_batches_another_process_indexed_are_forgotten(
    database_url: str, open_store: Callable[[str], Store]
) -> None:
    server, processor = open_store(database_url), open_store(database_url)
    model = new_model(server)
    for k in range(100):
        ids = [f"f{k}-{i}" for i in range(3)]
        accept(server, model, ids)
        for batch in processor.pending_batches():
            index_batch(processor, batch["id"])
            apply_batch(processor, batch["id"], _merge_adding(3, []))
    assert len(server._unindexed[model]) <= 65  # bounded, not one entry per batch ever
    assert accept(server, model, ["f5-1"]) == (0, {"f5-1"})
