"""Ingest through the real HTTP server (``watchkeeper serve`` in a subprocess), on SQLite and on
PostgreSQL: every body shape, per-field reasons for bad rows, quarantine, idempotent retries,
limits and back-pressure, the one JSON error shape, /metrics, and the Parquet lake."""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from watchkeeper.ingest.events import to_ipc

ARROW = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
SHAPES = ("row-json", "columnar-json", "arrow", "parquet")
LIMITS = {
    "WATCHKEEPER_MAX_BODY_BYTES": "16384",  # the 400-row reference (~9 kB) fits
    "WATCHKEEPER_MAX_BATCH_EVENTS": "50",
    "WATCHKEEPER_MAX_PENDING_EVENTS": "10",
}

Events = Callable[..., list[dict[str, Any]]]
EventsTable = Callable[..., pa.Table]
WaitFor = Callable[..., None]
Register = Callable[..., str]


@pytest.fixture(scope="module")
def servers(module_server: Any, module_databases: Callable[[], str]) -> tuple[Any, Any]:
    """Two servers, each on a database of its own, started together: one with the default
    settings and one with small limits."""
    default = module_server(module_databases(), wait=False)
    limited = module_server(module_databases(), env=LIMITS, wait=False)
    return default.wait_ready(), limited.wait_ready()


@pytest.fixture(scope="module")
def server(servers: tuple[Any, Any]) -> Any:
    return servers[0]


@pytest.fixture(scope="module")
def limited(servers: tuple[Any, Any]) -> Any:
    return servers[1]


@pytest.fixture
def client(server: Any) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def post(client: httpx.Client, model: str, body: bytes, content_type: str) -> httpx.Response:
    return client.post(
        f"/v1/models/{model}/predictions", content=body, headers={"content-type": content_type}
    )


def post_json(client: httpx.Client, model: str, events: Any) -> httpx.Response:
    return post(client, model, json.dumps(events).encode(), "application/json")


def body_in(shape: str, ids: list[str], make_events: Events, events_table: EventsTable) -> bytes:
    if shape == "row-json":
        return json.dumps({"events": make_events(ids)}).encode()
    if shape == "columnar-json":
        events = make_events(ids)
        columnar: dict[str, Any] = {k: [e[k] for e in events] for k in events[0] if k != "features"}
        columnar["features"] = {
            k: [e["features"][k] for e in events] for k in events[0]["features"]
        }
        return json.dumps(columnar).encode()
    table = events_table(ids)
    if shape == "arrow":
        return to_ipc(table)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


CONTENT_TYPES = {
    "row-json": "application/json",
    "columnar-json": "application/json",
    "arrow": ARROW,
    "parquet": PARQUET,
}


def status(client: httpx.Client, model: str) -> dict[str, Any]:
    r = client.get(f"/v1/models/{model}")
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def caught_up(client: httpx.Client, model: str, wait_for: WaitFor) -> dict[str, Any]:
    """Wait until the processor has moved every acknowledged event to the lake."""
    wait_for(lambda: status(client, model)["events_pending"] == 0, "the processor to catch up")
    return status(client, model)


def lake(server: Any, model: str, columns: str = "prediction_id") -> list[tuple[Any, ...]]:
    """Rows of a model's lake, read as a user would: DuckDB over the hive-partitioned files."""
    files = server.lake_dir / f"model={model}"
    if not any(files.glob("**/*.parquet")):
        return []
    with duckdb.connect() as db:
        rows: list[tuple[Any, ...]] = db.execute(
            f"SELECT {columns} FROM read_parquet('{files}/**/*.parquet', hive_partitioning=true)"
            " ORDER BY prediction_id"
        ).fetchall()
    return rows


def lake_ids(server: Any, model: str) -> list[str]:
    return [row[0] for row in lake(server, model)]


def assert_error(r: httpx.Response, status_code: int, kind: str, *words: str) -> None:
    """The one JSON error shape: {"error": {"status", "type", "message"}}."""
    assert r.status_code == status_code, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert set(r.json()) == {"error"}, r.json()
    error = r.json()["error"]
    assert error["status"] == status_code and error["type"] == kind, error
    for word in words:
        assert word in error["message"], error


# ---------------------------------------------------------------------------- registration
def test_register_a_model_with_a_parquet_reference(
    client: httpx.Client, reference: pa.Table, register: Register
) -> None:
    model = register(client, reference)
    info = status(client, model)
    assert info["champion"] == "v1" and info["segments"] == ["region"]
    assert [v["version"] for v in info["versions"]] == ["v1"]
    assert info["versions"][0]["reference_rows"] == reference.num_rows
    assert info["events_total"] == info["events_pending"] == 0
    assert model in client.get("/v1/models").json()["models"]

    buf = io.BytesIO()
    pq.write_table(reference, buf)
    again = client.put(
        f"/v1/models/{model}/versions/v1",
        content=buf.getvalue(),
        headers={"content-type": PARQUET},
    )
    assert_error(again, 409, "ConflictError", "v1")


# ---------------------------------------------------------------------------- body shapes
@pytest.mark.parametrize("shape", SHAPES)
def test_every_body_shape_is_stored(
    shape: str,
    server: Any,
    client: httpx.Client,
    reference: pa.Table,
    register: Register,
    make_events: Events,
    events_table: EventsTable,
    wait_for: WaitFor,
) -> None:
    model = register(client, reference)
    ids = [f"{shape}-{i}" for i in range(25)]
    r = post(client, model, body_in(shape, ids, make_events, events_table), CONTENT_TYPES[shape])
    assert r.status_code == 200, r.text
    assert r.json() == {
        "accepted": 25,
        "duplicates": 0,
        "rejected": 0,
        "errors": [],
        "ignored_fields": [],
    }
    info = caught_up(client, model, wait_for)
    assert info["events_total"] == 25
    rows = lake(server, model, "prediction_id, age, plan, region, latency_ms, model, version")
    assert [row[0] for row in rows] == sorted(ids)
    sent = {e["prediction_id"]: e for e in make_events(ids)}
    for pid, age, plan, region, latency, in_model, version in rows:
        assert math.isclose(age, sent[pid]["features"]["age"])
        assert (plan, region) == (sent[pid]["features"]["plan"], sent[pid]["features"]["region"])
        assert math.isclose(latency, sent[pid]["latency_ms"])
        assert (in_model, version) == (model, "v1")


def test_mixed_shapes_make_one_lake_table(
    server: Any,
    client: httpx.Client,
    reference: pa.Table,
    register: Register,
    make_events: Events,
    events_table: EventsTable,
    wait_for: WaitFor,
) -> None:
    """Batches with and without optional fields read back as one table (no union_by_name)."""
    model = register(client, reference)
    expected: list[str] = []
    for shape in SHAPES:
        ids = [f"{shape}-{i}" for i in range(5)]
        body = body_in(shape, ids, make_events, events_table)
        assert post(client, model, body, CONTENT_TYPES[shape]).json()["accepted"] == 5
        expected += ids
    minimal = [{"prediction_id": "bare", "features": {"age": 30, "plan": "pro", "region": "eu"}}]
    assert post_json(client, model, minimal).json()["accepted"] == 1
    caught_up(client, model, wait_for)
    assert lake_ids(server, model) == sorted([*expected, "bare"])
    [bare] = [
        row for row in lake(server, model, "prediction_id, latency_ms, status") if row[0] == "bare"
    ]
    assert bare == ("bare", None, None)


# ---------------------------------------------------------------------------- validation
def test_bad_rows_get_per_field_reasons_and_the_rest_is_stored(
    server: Any,
    client: httpx.Client,
    reference: pa.Table,
    register: Register,
    make_events: Events,
    wait_for: WaitFor,
) -> None:
    model = register(client, reference)
    good = make_events([f"g{i}" for i in range(10)])
    batch: list[dict[str, Any]] = [dict(e, features=dict(e["features"])) for e in good]
    batch[1]["features"]["age"] = "forty"  # wrong type
    del batch[2]["features"]["plan"]  # a required feature missing
    batch[3]["features"]["age"] = float("nan")  # NaN where the reference had none
    batch[4]["timestamp"] = "the day before yesterday"  # not a time
    del batch[5]["prediction_id"]
    batch[6]["prediction_id"] = "g0"  # repeats the first event's id
    batch[7]["timestamp"] = datetime.fromtimestamp(time.time() - 60, UTC).isoformat()  # fine
    batch[8]["features"]["income"] = None  # an optional feature: fine
    batch[9]["colour"] = "blue"  # an unknown field: ignored, named
    r = post(client, model, json.dumps(batch).encode(), "application/json")  # NaN as JSON NaN
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (4, 0, 6)
    assert result["ignored_fields"] == ["colour"]
    expected = [
        (1, "g1", [{"field": "age", "problem": "expected a number, got 'forty'"}]),
        (2, "g2", [{"field": "plan", "problem": "missing required feature (null or NaN)"}]),
        (3, "g3", [{"field": "age", "problem": "missing required feature (null or NaN)"}]),
        (4, "g4", [{"field": "timestamp", "problem": "not an ISO 8601 time or epoch seconds"}]),
        (5, None, [{"field": "prediction_id", "problem": "missing"}]),
        (
            6,
            "g0",
            [
                {
                    "field": "prediction_id",
                    "problem": "repeats an earlier prediction_id in this batch",
                }
            ],
        ),
    ]
    got = [(e["index"], e["prediction_id"], e["reasons"]) for e in result["errors"]]
    assert got == expected

    listed = client.get(f"/v1/models/{model}/quarantine").json()
    assert listed["model"] == model
    assert [(q["prediction_id"], q["reasons"]) for q in listed["items"]] == [
        (pid, reasons) for _, pid, reasons in expected
    ]
    assert listed["items"][0]["event"]["age"] == "forty"
    page = client.get(f"/v1/models/{model}/quarantine", params={"limit": 2, "offset": 4})
    assert [q["prediction_id"] for q in page.json()["items"]] == [None, "g0"]

    info = caught_up(client, model, wait_for)
    assert (info["events_total"], info["quarantined_total"]) == (4, 6)
    assert lake_ids(server, model) == ["g0", "g7", "g8", "g9"]


def test_bad_rows_in_an_arrow_batch(
    server: Any,
    client: httpx.Client,
    reference: pa.Table,
    register: Register,
    events_table: EventsTable,
) -> None:
    model = register(client, reference)
    table = events_table(["a0", "a1", "a2", "a3"])
    age = table.column("age").to_pylist()
    age[1] = float("nan")
    ids = ["a0", None, "a2", "a0"]
    table = table.set_column(table.schema.get_field_index("age"), "age", pa.array(age))
    table = table.set_column(0, "prediction_id", pa.array(ids, pa.string()))
    result = post(client, model, to_ipc(table), ARROW).json()
    assert result["accepted"] == 2
    assert [(e["index"], [r["field"] for r in e["reasons"]]) for e in result["errors"]] == [
        (1, ["prediction_id", "age"]),
        (3, ["prediction_id"]),
    ]


def test_a_batch_with_only_bad_rows_is_422(
    client: httpx.Client, reference: pa.Table, register: Register
) -> None:
    model = register(client, reference)
    r = post_json(client, model, [{"prediction_id": "x", "features": {"age": "old"}}])
    assert r.status_code == 422
    assert r.json()["accepted"] == 0 and r.json()["rejected"] == 1


def test_an_unreadable_body_is_400_and_another_type_415_with_the_error_shape(
    client: httpx.Client, reference: pa.Table, register: Register
) -> None:
    model = register(client, reference)
    assert_error(post(client, model, b"{not json", "application/json"), 400, "PayloadError")
    assert_error(post(client, model, b"PAR1 garbage", PARQUET), 400, "PayloadError", "Parquet")
    assert_error(
        post(client, model, b"a,b\n1,2\n", "text/csv"), 415, "UnsupportedMediaType", "text/csv"
    )


# ---------------------------------------------------------------------------- idempotency
def test_retries_are_idempotent(
    server: Any,
    client: httpx.Client,
    reference: pa.Table,
    register: Register,
    make_events: Events,
    wait_for: WaitFor,
) -> None:
    model = register(client, reference)
    first = make_events([f"r{i}" for i in range(30)])
    assert post_json(client, model, first).json()["accepted"] == 30
    again = post_json(client, model, first).json()
    assert (again["accepted"], again["duplicates"]) == (0, 30)
    overlapping = first[10:] + make_events([f"r{i}" for i in range(30, 40)], seed=2)
    mixed = post_json(client, model, overlapping).json()
    assert (mixed["accepted"], mixed["duplicates"]) == (10, 20)
    info = caught_up(client, model, wait_for)
    assert (info["events_total"], info["duplicates_total"]) == (40, 50)
    assert lake_ids(server, model) == sorted(f"r{i}" for i in range(40))  # each exactly once

    # a retried batch with rejected rows: its bad rows are quarantined (and counted) once
    bad = make_events(["q0", "q1", "q2"], seed=3)
    bad[0]["features"]["age"] = "old"
    bad[1]["prediction_id"] = ""
    for attempt in range(2):
        result = post_json(client, model, bad).json()
        assert (result["accepted"], result["rejected"]) == ((1, 2) if attempt == 0 else (0, 2))
    info = caught_up(client, model, wait_for)
    assert (info["quarantined_total"], info["events_total"]) == (3, 41)  # the id-less row twice
    assert [
        q["prediction_id"] for q in client.get(f"/v1/models/{model}/quarantine").json()["items"]
    ] == ["q0", "", ""]


# ---------------------------------------------------------------------------- errors
def test_unknown_model_is_404_with_the_error_shape(client: httpx.Client) -> None:
    body = json.dumps([{"prediction_id": "x"}]).encode()
    assert_error(post(client, "nobody", body, "application/json"), 404, "NotFoundError", "nobody")
    assert_error(client.get("/v1/models/nobody"), 404, "NotFoundError", "nobody")
    assert_error(client.get("/v1/models/nobody/quarantine"), 404, "NotFoundError", "nobody")


def test_framework_errors_use_the_error_shape_too(client: httpx.Client) -> None:
    assert_error(client.get("/v1/no-such-route"), 404, "NotFound")
    r = client.get("/v1/models/x/quarantine", params={"limit": "many"})
    assert r.status_code == 422 and "error" in r.json()


# ---------------------------------------------------------------------------- metrics
def test_metrics_show_processed_predictions_and_latency(
    client: httpx.Client,
    reference: pa.Table,
    register: Register,
    make_events: Events,
    wait_for: WaitFor,
) -> None:
    model = register(client, reference)
    events = make_events([f"x{i}" for i in range(40)])
    post_json(client, model, events)
    caught_up(client, model, wait_for)
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    errors = sum(e["status"] == "error" for e in events)
    assert errors == 4
    ok = value("watchkeeper_predictions_total", model=model, version="v1", status="ok")
    bad = value("watchkeeper_predictions_total", model=model, version="v1", status="error")
    assert (ok, bad) == (36, 4)
    histogram = "watchkeeper_prediction_latency_seconds"
    assert value(f"{histogram}_count", model=model, version="v1") == 40
    assert value(f"{histogram}_bucket", model=model, version="v1", le="+Inf") == 40
    seconds = sorted(e["latency_ms"] / 1000 for e in events)
    assert math.isclose(value(f"{histogram}_sum", model=model, version="v1"), sum(seconds))
    under_100ms = sum(s <= 0.1 for s in seconds)
    assert value(f"{histogram}_bucket", model=model, version="v1", le="0.1") == under_100ms
    assert value("watchkeeper_ingest_events_total", model=model) == 40
    assert value("watchkeeper_ingest_pending_events") >= 0


# ---------------------------------------------------------------------------- limits
def test_too_large_a_body_is_413_with_the_limit(
    limited: Any, reference: pa.Table, register: Register, make_events: Events
) -> None:
    with limited.client() as client:
        model = register(client, reference, "big")
        body = json.dumps(make_events([f"b{i}" for i in range(200)])).encode()
        assert len(body) > 16384
        r = post(client, model, body, "application/json")
        assert_error(r, 413, "PayloadTooLarge", "16384")
        chunks = iter([body[i : i + 4096] for i in range(0, len(body), 4096)])
        r = client.post(  # no Content-Length: the limit is enforced while reading
            f"/v1/models/{model}/predictions",
            content=chunks,
            headers={"content-type": "application/json"},
        )
        assert_error(r, 413, "PayloadTooLarge", "16384")
        assert status(client, model)["events_total"] == 0


def test_too_many_events_is_413_with_the_limit(
    limited: Any, reference: pa.Table, register: Register, make_events: Events
) -> None:
    with limited.client() as client:
        model = register(client, reference, "many")
        r = post_json(client, model, make_events([f"n{i}" for i in range(51)]))
        assert_error(r, 413, "PayloadTooLarge", "51 events", "50")
        assert (
            post_json(client, model, make_events([f"n{i}" for i in range(50)])).status_code == 200
        )


def test_overload_is_503_with_retry_after_until_the_processor_catches_up(
    limited: Any, reference: pa.Table, register: Register, make_events: Events, wait_for: WaitFor
) -> None:
    """The lake of one model cannot be written (a file stands where its directory goes): its
    batches stay pending, so the pending count is known exactly and stays over the limit."""
    with limited.client() as client:
        model = register(client, reference, "slow")
        caught_up(client, model, wait_for)
        limited.lake_dir.mkdir(parents=True, exist_ok=True)
        blocker = limited.lake_dir / f"model={model}"
        blocker.write_text("not a directory")
        try:
            r = post_json(client, model, make_events([f"s{i}" for i in range(20)]))
            assert r.json()["accepted"] == 20
            wait_for(lambda: processor_errors(client) > 0, "the processor to fail on the batch")
            r = post_json(client, model, make_events(["s20"]))
            assert_error(r, 503, "Overloaded", "retry later")
            assert int(r.headers["retry-after"]) > 0
            info = status(client, model)
            assert (info["events_total"], info["events_pending"]) == (20, 20)
        finally:
            blocker.unlink()
        caught_up(client, model, wait_for)
        assert post_json(client, model, make_events(["s20"])).json()["accepted"] == 1
        caught_up(client, model, wait_for)
        assert lake_ids(limited, model) == sorted(f"s{i}" for i in range(21))


def processor_errors(client: httpx.Client) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name == "watchkeeper_processor_errors":
            return float(family.samples[0].value)
    raise AssertionError("no watchkeeper_processor_errors_total in /metrics")
