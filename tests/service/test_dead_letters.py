"""The processor never stalls behind a batch it cannot process: a logged batch that fails
``processor_max_attempts`` times in a row is moved to the dead letters with its error, the
batches around it are processed, nothing stays pending, and the API lists it — on SQLite and
PostgreSQL."""

from __future__ import annotations

import errno
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from tests.dashboard.dashboard_data import register as register_version
from tests.service.fixtures import make_events, reference_table
from watchkeeper.evaluation.retention import sweep
from watchkeeper.ingest.processor import Processor
from watchkeeper.settings import Settings
from watchkeeper.store import tables as t
from watchkeeper.store.faults import transient
from watchkeeper.store.state import Store

MODEL = "m"


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Any]:
    """The service on ``database_url``, its background work not started (the test runs the
    processor itself, ``app.state.processor``)."""
    with warnings.catch_warnings():  # starlette asks for httpx2, which is not needed here
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient

    from watchkeeper.server.app import create_app
    from watchkeeper.settings import load_settings

    settings = load_settings(
        environ={}, data_dir=str(tmp_path / "data"), database_url=database_url, processor="thread"
    )
    application = create_app(settings)
    application.state.client = TestClient(application, base_url="http://localhost")
    try:
        yield application
    finally:
        application.state.store.close()


def register(client: Any, reference: pa.Table) -> None:
    register_version(client, MODEL, reference, "prediction=pred&segments=region")


def send(client: Any, ids: list[str]) -> None:
    r = client.post(f"/v1/models/{MODEL}/predictions", json={"events": make_events(ids)})
    assert r.status_code == 200 and r.json()["accepted"] == len(ids), r.text


def log_poison(store: Store, ids: list[str]) -> int:
    """A logged batch whose payload is not an Arrow stream, written through the log's step."""
    return store.write(lambda conn: store.log_batch(conn, MODEL, "v1", b"\x00garbage", ids))


def indexed_ids(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        p = t.predictions.c
        return set(conn.execute(sa.select(p.prediction_id).where(p.model == MODEL)).scalars())


def test_a_batch_that_keeps_failing_is_dead_lettered_and_the_rest_flow_on(
    app: Any, reference: pa.Table, database_url: str, open_store: Callable[[str], Store]
) -> None:
    client, store = app.state.client, app.state.store
    processor: Processor = app.state.processor
    assert app.state.settings.processor_max_attempts == 3  # the default
    register(client, reference)
    first = [f"a-{i}" for i in range(10)]
    second = [f"c-{i}" for i in range(10)]
    send(client, first)
    bad = log_poison(store, ["bad-0", "bad-1"])
    send(client, second)
    # a process that starts now reads the log's ids: the unreadable batch does not stop it
    later = open_store(database_url)
    assert later.write(lambda conn: later.known_ids(conn, MODEL, ["a-0", "b-0"])) == {"a-0"}

    # the first pass: both good batches processed around the bad one, which stays pending
    assert processor.run_once(raise_errors=False) == 2
    assert indexed_ids(store) == set(first) | set(second)
    assert processor.errors == 1 and store.pending_events() == 2
    assert [b["id"] for b in store.pending_batches()] == [bad]
    # a label join indexes what is pending first: the bad batch does not fail it
    r = client.post(
        f"/v1/models/{MODEL}/actuals",
        json={"actuals": [{"prediction_id": "a-0", "label": "yes"}]},
    )
    assert r.status_code == 200 and r.json()["matched"] == 1, r.text

    for _ in range(4):  # bounded: two more failures dead-letter it
        processor.run_once(raise_errors=False)
    assert processor.errors == 3 and processor.dead_lettered == 1
    assert store.pending_batches() == [] and store.pending_events() == 0
    assert processor.batches_processed == 2

    status = client.get(f"/v1/models/{MODEL}").json()
    assert status["events_pending"] == 0
    assert status["dead_lettered_batches_total"] == 1
    assert status["dead_lettered_events_total"] == 2
    r = client.get(f"/v1/models/{MODEL}/dead-letters")
    assert r.status_code == 200, r.text
    [item] = r.json()["items"]
    assert item["batch_id"] == bad and item["version"] == "v1" and item["events"] == 2
    assert item["attempts"] == 3 and item["payload_bytes"] == len(b"\x00garbage")
    assert item["error"].startswith("ArrowInvalid: "), item["error"]
    assert item["dead_at"] >= item["received_at"]
    assert client.get(f"/v1/models/{MODEL}/dead-letters?offset=1").json()["items"] == []
    assert (
        f'watchkeeper_dead_lettered_batches_total{{model="{MODEL}"}} 1.0'
        in client.get("/metrics").text.splitlines()
    )

    # labels for its predictions stay unmatched; the good ones keep matching
    r = client.post(
        f"/v1/models/{MODEL}/actuals",
        json={
            "actuals": [
                {"prediction_id": "bad-0", "label": "yes"},
                {"prediction_id": "c-0", "label": "no"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert (r.json()["matched"], r.json()["unmatched"]) == (1, 1)

    # later batches flow on
    send(client, ["d-0", "d-1"])
    assert processor.run_once(raise_errors=False) == 1
    assert {"d-0", "d-1"} <= indexed_ids(store) and store.pending_events() == 0

    # retention deletes a dead letter once it is older than the model's retention
    settings = app.state.settings
    assert sweep(store, settings.lake_dir)["dead_batches"] == 0
    later_than_retention = item["dead_at"] + (settings.retention_days + 1) * 86400
    assert sweep(store, settings.lake_dir, now=later_than_retention)["dead_batches"] == 1
    assert client.get(f"/v1/models/{MODEL}/dead-letters").json()["items"] == []


def test_a_batch_indexed_before_it_failed_leaves_the_index(
    app: Any, reference: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the index step (here: the lake cannot be written) dead-letters the
    batch with its index rows removed, so its predictions are not matched to labels."""
    client, store = app.state.client, app.state.store
    processor: Processor = app.state.processor
    register(client, reference)
    send(client, ["x-0", "x-1"])
    lake = app.state.settings.lake_dir
    lake.parent.mkdir(parents=True, exist_ok=True)
    lake.write_text("a file where the lake's directory should be")
    assert processor.run_once(raise_errors=False) == 0
    assert indexed_ids(store) == {"x-0", "x-1"}  # indexed, then the lake write failed
    for _ in range(2):
        assert processor.run_once(raise_errors=False) == 0
    assert processor.dead_lettered == 1 and store.pending_events() == 0
    assert indexed_ids(store) == set()
    [item] = client.get(f"/v1/models/{MODEL}/dead-letters").json()["items"]
    assert item["error"].split(":")[0] in ("FileExistsError", "NotADirectoryError")


def test_failures_of_the_database_or_disk_are_not_held_against_a_batch(database_url: str) -> None:
    """Real errors: a value the database cannot hold is the batch's fault; an unreachable
    database or a full disk is not (every batch would fail the same way)."""
    from watchkeeper.store.state import create_engine

    engine = create_engine(Settings(database_url=database_url).sqlalchemy_url)
    try:
        with engine.connect() as conn, pytest.raises(Exception) as value_error:
            conn.execute(sa.text("SELECT CAST(:v AS BIGINT)"), {"v": 2**70})
    finally:
        engine.dispose()
    assert not transient(value_error.value), repr(value_error.value)

    unreachable = create_engine("postgresql://root@127.0.0.1:1/none")
    with pytest.raises(sa.exc.OperationalError) as down:
        unreachable.connect()
    assert transient(down.value)
    assert transient(OSError(errno.ENOSPC, "No space left on device"))
    assert not transient(NotADirectoryError(errno.ENOTDIR, "Not a directory"))


def test_a_dead_letter_is_replayed_once_its_cause_is_fixed_or_deleted(
    app: Any, reference: pa.Table
) -> None:
    """The lake's directory blocked by a file dead-letters two batches; with the file gone, one
    is replayed and processed (its ids indexed once, a re-sent id a duplicate), the other
    deleted; the counters tell what happened and an unknown id is a 404."""
    client, store = app.state.client, app.state.store
    processor: Processor = app.state.processor
    register(client, reference)
    lake = app.state.settings.lake_dir
    lake.parent.mkdir(parents=True, exist_ok=True)
    lake.write_text("a file where the lake's directory should be")
    send(client, ["r-0", "r-1"])
    send(client, ["s-0"])
    for _ in range(3):
        processor.run_once(raise_errors=False)
    assert processor.dead_lettered == 2 and store.pending_events() == 0
    first, second = client.get(f"/v1/models/{MODEL}/dead-letters").json()["items"]
    assert client.get(f"/v1/models/{MODEL}").json()["dead_letters_waiting"] == 2

    # replayed while the cause is still there: it fails again and comes back
    r = client.post(f"/v1/models/{MODEL}/dead-letters/{first['id']}/replay")
    assert r.status_code == 200, r.text
    assert r.json()["events"] == 2 and r.json()["id"] == first["id"]
    assert store.pending_events() == 2
    for _ in range(3):
        processor.run_once(raise_errors=False)
    items = client.get(f"/v1/models/{MODEL}/dead-letters").json()["items"]
    assert [i["events"] for i in items] == [1, 2] and processor.dead_lettered == 3
    again = items[1]

    lake.unlink()  # the cause fixed
    r = client.post(f"/v1/models/{MODEL}/dead-letters/{again['id']}/replay")
    assert r.status_code == 200, r.text
    # the client sends one again meanwhile: a duplicate of the replayed batch, not stored twice
    r = client.post(f"/v1/models/{MODEL}/predictions", json={"events": make_events(["r-1"])})
    assert r.status_code == 200 and r.json()["duplicates"] == 1, r.text
    processor.run_once(raise_errors=False)
    assert indexed_ids(store) == {"r-0", "r-1"} and store.pending_events() == 0

    r = client.delete(f"/v1/models/{MODEL}/dead-letters/{second['id']}")
    assert r.status_code == 204, r.text
    assert client.get(f"/v1/models/{MODEL}/dead-letters").json()["items"] == []
    status = client.get(f"/v1/models/{MODEL}").json()
    assert status["dead_lettered_batches_total"] == 3  # totals of what happened
    assert status["dead_letters_waiting"] == 0
    assert status["events_total"] == 3 and status["duplicates_total"] == 1

    for method, path in (
        ("post", f"/v1/models/{MODEL}/dead-letters/{again['id']}/replay"),
        ("delete", f"/v1/models/{MODEL}/dead-letters/{second['id']}"),
        ("delete", f"/v1/models/nope/dead-letters/{second['id']}"),
    ):
        r = getattr(client, method)(path)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["type"] == "NotFoundError", r.text
    r = client.post(f"/v1/models/{MODEL}/dead-letters/0/replay")
    assert r.status_code == 422 and "dead_id" in r.text, r.text


def test_the_cli_lists_replays_and_deletes_dead_letters_of_a_running_service(
    server: Any, database_url: str, register: Any, wait_for: Any
) -> None:
    """``watchkeeper dead-letters`` against ``watchkeeper serve``: the lake blocked by a file
    dead-letters two batches; with it gone, one is replayed (its events reach the index) and
    the other deleted; a wrong id is one line and exit 2."""
    from tests.alerts.test_alerts_api import cli

    srv = server(database_url, env={"WATCHKEEPER_PROCESSOR_MAX_ATTEMPTS": "2"})
    srv.lake_dir.parent.mkdir(parents=True, exist_ok=True)
    srv.lake_dir.write_text("a file where the lake's directory should be")
    env = {"WATCHKEEPER_URL": srv.url}
    with srv.client() as client:
        model = register(client, reference_table())
        for ids in (["k-0", "k-1"], ["k-2"]):
            r = client.post(f"/v1/models/{model}/predictions", json={"events": make_events(ids)})
            assert r.status_code == 200 and r.json()["accepted"] == len(ids), r.text

        def status() -> dict[str, Any]:
            return dict(client.get(f"/v1/models/{model}").json())

        wait_for(lambda: status()["dead_letters_waiting"] == 2, "two dead letters")
        listed = cli("dead-letters", "list", model, env=env)
        assert listed.returncode == 0, listed.stderr
        assert (
            listed.stdout.count("NotADirectoryError") + listed.stdout.count("FileExistsError") == 2
        ), listed.stdout
        first, second = json.loads(cli("dead-letters", "list", model, "--json", env=env).stdout)[
            "items"
        ]
        srv.lake_dir.unlink()
        replayed = cli("dead-letters", "replay", model, str(first["id"]), env=env)
        assert replayed.returncode == 0, replayed.stderr
        assert replayed.stdout.strip() == (
            f"replayed dead letter {first['id']}: {first['events']} events logged again"
        )
        wait_for(lambda: status()["events_pending"] == 0, "the replayed batch processed")
        deleted = cli("dead-letters", "delete", model, "--all", env=env)
        assert deleted.stdout.strip() == f"deleted dead letter {second['id']}", deleted.stderr
        final = status()
        assert final["dead_letters_waiting"] == 0 and final["dead_lettered_batches_total"] == 2
        r = client.post(
            f"/v1/models/{model}/actuals",
            json={"actuals": [{"prediction_id": i, "label": "x"} for i in ("k-0", "k-1", "k-2")]},
        )
        assert (r.json()["matched"], r.json()["unmatched"]) == (2, 1), r.text
    missing = cli("dead-letters", "replay", model, "999", env=env)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "404 NotFoundError: model" in missing.stderr and "no dead letter 999" in missing.stderr
    both = cli("dead-letters", "delete", model, "1", "--all", env=env)
    assert both.returncode == 2 and "not both" in both.stderr
