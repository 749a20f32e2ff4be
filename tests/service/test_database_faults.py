"""Faults of the database and its disk are answered 503 with ``Retry-After``, never 500, and
lose nothing that was acknowledged. The faults are real: PostgreSQL backends terminated in the
middle of ingest, a filesystem filled up under the SQLite database, the SQLite file locked by
another connection past the busy timeout.

Every answer during a fault is a 2xx or a 503 with ``Retry-After`` and the error body; a
client that retries its 503s (as the SDK does) gets every batch acknowledged, and every
acknowledged id is stored exactly once: in the prediction index and in the lake.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from tests.service.fixtures import (
    Server,
    ServerFactory,
    _pg_admin,
    fill,
    make_database,
    small_filesystem,
    small_tablespace,
    terminate_backends,
)
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

Events = Callable[..., list[dict[str, Any]]]
# a batch the processor failed on once would be dead-lettered: a fault must not count
ONE_STRIKE = {"WATCHKEEPER_PROCESSOR_MAX_ATTEMPTS": "1"}


def assert_unavailable(r: httpx.Response) -> None:
    """The one answer to a fault: 503, ``Retry-After`` in seconds, the error body."""
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.headers["retry-after"].isdigit(), r.headers
    error = r.json()["error"]
    assert error["status"] == 503, error
    assert error["type"] in ("StoreUnavailable", "NotReady", "Overloaded"), error


class Client:
    """Posts and reads, retrying 503s; records every answer and the acknowledged ids."""

    def __init__(self, server: Server, model: str, make_events: Events) -> None:
        self.http, self.model, self.make_events = server.client(timeout=60), model, make_events
        self.statuses: Counter[int] = Counter()
        self.unexpected: list[str] = []
        self.acknowledged: set[str] = set()
        self.labelled: set[str] = set()
        self.lock = threading.Lock()

    def send(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> int:
        while True:
            r = self.http.request(method, path, **kwargs)
            with self.lock:
                self.statuses[r.status_code] += 1
            if r.status_code == 503:
                try:
                    assert_unavailable(r)
                except (AssertionError, KeyError, ValueError) as exc:
                    self.unexpected.append(f"{method} {path}: {exc!r}")
                if retry:
                    time.sleep(0.05)
                    continue
            elif not 200 <= r.status_code < 300:
                self.unexpected.append(f"{method} {path}: {r.status_code} {r.text[:300]}")
            return r.status_code

    def ingest(self, ids: list[str], *, retry: bool = True) -> int:
        path = f"/v1/models/{self.model}/predictions"
        status = self.send("POST", path, json={"events": self.make_events(ids)}, retry=retry)
        if status == 200:
            with self.lock:
                self.acknowledged.update(ids)
        return status

    def label(self, ids: list[str]) -> int:
        actuals = [{"prediction_id": i, "label": "yes"} for i in ids]
        status = self.send("POST", f"/v1/models/{self.model}/actuals", json={"actuals": actuals})
        if status == 200:
            with self.lock:
                self.labelled.update(ids)
        return status


@pytest.fixture
def make_client(make_events: Events) -> Iterator[Callable[[Server, str], Client]]:
    """``make_client(server, model)``: a :class:`Client`, closed after the test."""
    clients: list[Client] = []

    def make(server: Server, model: str) -> Client:
        clients.append(Client(server, model, make_events))
        return clients[-1]

    yield make
    for client in clients:
        client.http.close()


def assert_stored_once(server: Server, store: Store, client: Client, wait_for: Any) -> None:
    """Every acknowledged id is in the prediction index and the lake exactly once, nothing
    waits, nothing was dead-lettered."""
    model = client.model

    def settled() -> bool:
        status = client.http.get(f"/v1/models/{model}")
        return status.status_code == 200 and status.json()["events_pending"] == 0

    wait_for(settled, "the processor to work off the log", timeout=120)
    status = client.http.get(f"/v1/models/{model}").json()
    assert status["dead_lettered_batches_total"] == 0, status
    assert status["events_total"] == len(client.acknowledged), status
    p = t.predictions.c
    with store.engine.connect() as conn:
        indexed = list(conn.execute(sa.select(p.prediction_id).where(p.model == model)).scalars())
    assert Counter(indexed) == Counter(client.acknowledged)
    files = list((server.lake_dir / f"model={model}").rglob("*.parquet"))
    lake = pa.concat_tables([pq.read_table(f, columns=["prediction_id"]) for f in files])
    assert Counter(lake.column("prediction_id").to_pylist()) == Counter(client.acknowledged)
    a = t.actuals.c
    with store.engine.connect() as conn:
        labels = set(conn.execute(sa.select(a.prediction_id).where(a.model == model)).scalars())
    assert labels == client.labelled


def batches(prefix: str, size: int = 40) -> Iterator[list[str]]:
    n = 0
    while True:
        yield [f"{prefix}{n}-{i}" for i in range(size)]
        n += 1


# ------------------------------------------------------------------ PostgreSQL connections
@pytest.mark.slow  # ingest while backends are terminated for several seconds
def test_postgresql_backends_terminated_mid_ingest(
    server: ServerFactory,
    tmp_path: Path,
    reference: pa.Table,
    register: Callable[..., str],
    make_events: Events,
    make_client: Callable[[Server, str], Client],
    open_store: Callable[[str], Store],
    wait_for: Any,
) -> None:
    with make_database("postgresql", tmp_path / "db") as url:
        srv = server(url, env=ONE_STRIKE)
        with srv.client() as http:
            client = make_client(srv, register(http, reference))
        stop = threading.Event()

        def ingest() -> None:
            for ids in batches("p"):
                if stop.is_set():
                    return
                client.ingest(ids)
                client.label(ids[:10])

        def read() -> None:
            while not stop.is_set():
                client.send("GET", f"/v1/models/{client.model}", retry=False)
                client.send("GET", "/v1/silences", retry=False)

        workers = [threading.Thread(target=f) for f in (ingest, ingest, read)]
        for w in workers:
            w.start()
        terminated = 0
        try:
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                time.sleep(0.1)
                terminated += terminate_backends(url)
        finally:
            stop.set()
            for w in workers:
                w.join(timeout=120)
        assert terminated > 10
        assert not client.unexpected, client.unexpected[:5]
        assert client.statuses[503] > 0, client.statuses  # the faults did reach requests
        assert set(client.statuses) <= {200, 503}, client.statuses

        # after the last termination, the next requests succeed without a retry
        terminate_backends(url)
        assert client.ingest([f"after-{i}" for i in range(5)], retry=False) == 200
        assert client.send("GET", f"/v1/models/{client.model}", retry=False) == 200
        assert client.send("GET", "/v1/silences", retry=False) == 200
        assert_stored_once(srv, open_store(url), client, wait_for)
        assert "processor process exited" not in srv.log.read_text()  # it waited instead


# ------------------------------------------------------------------ a full disk (SQLite)
@pytest.mark.slow  # a filesystem mounted, filled and freed
def test_a_full_disk_answers_503_and_not_ready_then_recovers(
    server: ServerFactory,
    tmp_path: Path,
    reference: pa.Table,
    register: Callable[..., str],
    make_events: Events,
    make_client: Callable[[Server, str], Client],
    open_store: Callable[[str], Store],
    wait_for: Any,
) -> None:
    with small_filesystem(tmp_path / "small", 16) as data_dir:
        url = f"sqlite:///{data_dir / 'state.db'}"
        srv = server(
            url, data_dir=data_dir, env={**ONE_STRIKE, "WATCHKEEPER_READY_MIN_FREE_MB": "0"}
        )
        with srv.client() as http:
            client = make_client(srv, register(http, reference))
        ids = batches("f", size=200)
        assert client.ingest(next(ids), retry=False) == 200
        filler = fill(data_dir)

        statuses = [client.ingest(next(ids), retry=False) for _ in range(40)]
        assert not client.unexpected, client.unexpected[:5]
        assert 503 in statuses, statuses  # the WAL's free pages may take a few batches first
        r = client.http.post(
            f"/v1/models/{client.model}/predictions", json={"events": make_events(["g-0"])}
        )
        assert_unavailable(r)
        assert "database or disk is full" in r.json()["error"]["message"]
        ready = httpx.get(f"{srv.url}/readyz", timeout=10)
        assert_unavailable(ready)
        assert {c["name"]: c["ok"] for c in ready.json()["error"]["checks"]}["disk"] is False
        r = client.http.post("/v1/silences", json={"matchers": {"model": "x"}, "duration": 60})
        assert r.status_code in (201, 503), r.text  # a small write may fit in the WAL
        if r.status_code == 503:
            assert_unavailable(r)

        filler.unlink()
        assert client.ingest(next(ids), retry=False) == 200
        assert httpx.get(f"{srv.url}/readyz", timeout=10).status_code == 200
        assert_stored_once(srv, open_store(url), client, wait_for)


@pytest.mark.slow  # a tablespace mounted, filled and freed
def test_a_full_postgresql_tablespace_answers_503_then_recovers(
    server: ServerFactory,
    tmp_path: Path,
    reference: pa.Table,
    register: Callable[..., str],
    make_events: Events,
    make_client: Callable[[Server, str], Client],
    open_store: Callable[[str], Store],
    wait_for: Any,
) -> None:
    """PostgreSQL's own disk fills up (its tables' tablespace on a small tmpfs): "could not
    extend file" (SQLSTATE 53100) is answered 503 like any fault of the surroundings, and
    once space is freed nothing acknowledged was lost."""
    with (
        small_tablespace(24) as (tablespace, mount),
        make_database("postgresql", tmp_path / "db", tablespace=tablespace) as url,
    ):
        srv = server(url, env=ONE_STRIKE)
        with srv.client() as http:
            client = make_client(srv, register(http, reference))
        ids = batches("t", size=200)
        assert client.ingest(next(ids), retry=False) == 200
        filler = fill(mount)

        statuses = [client.ingest(next(ids), retry=False) for _ in range(60)]
        assert not client.unexpected, client.unexpected[:5]
        assert 503 in statuses, statuses  # pages PostgreSQL holds free may take a few first
        assert set(statuses) <= {200, 503}, statuses
        r = client.http.post(
            f"/v1/models/{client.model}/predictions",
            json={"events": make_events([f"u-{i}" for i in range(200)])},
        )
        assert_unavailable(r)  # a single event may still fit in a page's free space
        assert "No space left on device" in r.json()["error"]["message"], r.text

        filler.unlink()
        assert client.ingest(next(ids), retry=False) == 200
        assert_stored_once(srv, open_store(url), client, wait_for)


# ------------------------------------------------------------------ SQLite locked
@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """``BEGIN EXCLUSIVE`` on the database from another connection, until the block ends."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@pytest.mark.slow  # waits out busy timeouts, then the processor
def test_sqlite_locked_past_the_busy_timeout_answers_503(
    server: ServerFactory,
    tmp_path: Path,
    reference: pa.Table,
    register: Callable[..., str],
    make_events: Events,
    make_client: Callable[[Server, str], Client],
    open_store: Callable[[str], Store],
    wait_for: Any,
) -> None:
    path = tmp_path / "db" / "state.db"
    path.parent.mkdir()
    url = f"sqlite:///{path}?timeout=1"  # the busy timeout, in seconds
    srv = server(url, env=ONE_STRIKE)
    with srv.client() as http:
        client = make_client(srv, register(http, reference))
    assert client.ingest(["before"], retry=False) == 200
    label = {"actuals": [{"prediction_id": "before", "label": "yes"}]}
    cloudevent: dict[str, Any] = {
        "url": "/v1/cloudevents",
        "params": {"model": client.model},
        "json": {"instances": [[1.0, 2.0]]},
        "headers": {
            "ce-specversion": "1.0",
            "ce-id": "ce-0",
            "ce-type": "org.kubeflow.serving.inference.request",
            "ce-source": "http://localhost:9081/v1/models/svc:predict",
        },
    }
    with exclusive_lock(path):
        began = time.monotonic()
        assert client.ingest(["while-0"], retry=False) == 503
        assert time.monotonic() - began >= 0.9  # it waited the busy timeout first
        r = client.http.post(
            f"/v1/models/{client.model}/predictions", json={"events": make_events(["while-1"])}
        )
        assert_unavailable(r)
        message = r.json()["error"]["message"]  # locked: this write or one before it waited
        assert "database is locked" in message or "the database is busy" in message, message
        silence = {"matchers": {"model": "x"}, "duration": 60}
        assert_unavailable(client.http.post("/v1/silences", json=silence))
        assert_unavailable(client.http.post(**cloudevent))
        assert_unavailable(client.http.post(f"/v1/models/{client.model}/actuals", json=label))
        assert client.http.get(f"/v1/models/{client.model}").status_code == 200  # WAL
    assert not client.unexpected, client.unexpected
    assert client.ingest(["while-0", "after"], retry=False) == 200
    assert client.http.post("/v1/silences", json=silence).status_code == 201
    assert client.http.post(**cloudevent).json()["status"] == "waiting"
    assert client.label(["before"]) == 200
    assert_stored_once(srv, open_store(url), client, wait_for)


@pytest.mark.slow  # waits out a Retry-After of 5 s
def test_the_sdk_waits_the_retry_after_of_a_503_then_delivers(
    server: ServerFactory,
    tmp_path: Path,
    reference: pa.Table,
    register: Callable[..., str],
    wait_for: Any,
) -> None:
    from watchkeeper.sdk import Client as Sdk
    from watchkeeper.store.faults import RETRY_AFTER

    path = tmp_path / "db" / "state.db"
    path.parent.mkdir()
    srv = server(f"sqlite:///{path}?timeout=1")
    with srv.client() as http:
        model = register(http, reference)
    # without Retry-After it would retry within 0.1 s
    sdk = Sdk(
        srv.url,
        spool_dir=tmp_path / "spool",
        flush_interval=0.05,
        backoff_base=0.05,
        max_backoff=0.1,
    )
    try:
        features = {"age": 40.0, "income": 50_000.0, "plan": "pro", "region": "eu"}
        with exclusive_lock(path):
            sdk.log_prediction(model, features, "yes", prediction_id="sdk-0")
            wait_for(lambda: sdk.stats.retries >= 1, "the SDK's first answer, a 503")
            answered = time.monotonic()
        wait_for(lambda: sdk.stats.acknowledged == 1, "the SDK to deliver", timeout=60)
        waited = time.monotonic() - answered
        assert RETRY_AFTER - 0.5 <= waited < RETRY_AFTER + 5, waited
        assert sdk.stats.rejected == 0 and not sdk.dead_letters()
    finally:
        sdk.close(timeout=0)


def test_only_faults_of_the_surroundings_are_transient(tmp_path: Path) -> None:
    """Real SQLite errors: locked is transient (503); a bad value (integrity) and a programming
    error (no such table, though SQLAlchemy calls it an OperationalError too) are not."""
    from watchkeeper.store.engine import create_engine
    from watchkeeper.store.faults import StoreUnavailable, transient, unavailable

    path = tmp_path / "state.db"
    engine = create_engine(f"sqlite:///{path}?timeout=0.1")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        caught: list[Exception] = []
        for statement in ("INSERT INTO t VALUES (1)", "SELECT * FROM missing"):
            with engine.begin() as conn, pytest.raises(sa.exc.DBAPIError) as error:
                conn.execute(sa.text(statement))
            caught.append(error.value)
        with exclusive_lock(path), engine.begin() as conn, pytest.raises(Exception) as locked:
            conn.execute(sa.text("INSERT INTO t VALUES (2)"))
    finally:
        engine.dispose()
    integrity, programming = caught
    assert isinstance(integrity, sa.exc.IntegrityError) and not transient(integrity)
    assert isinstance(programming, sa.exc.OperationalError) and not transient(programming)
    assert unavailable(programming) is None
    assert "database is locked" in str(locked.value) and transient(locked.value)
    answer = unavailable(locked.value)
    assert isinstance(answer, StoreUnavailable) and answer.http_status == 503
    assert "database is locked" in str(answer) and answer.retry_after > 0


@pytest.mark.slow  # a processor process started against a closed database
def test_the_processor_process_waits_for_the_database_instead_of_dying(
    tmp_path: Path,
    reference: pa.Table,
    make_events: Events,
    open_store: Callable[[str], Store],
    capfd: pytest.CaptureFixture[str],
    wait_for: Any,
) -> None:
    import json

    from watchkeeper.ingest.processor import ProcessorProcess
    from watchkeeper.ingest.service import IngestService
    from watchkeeper.settings import load_settings

    with make_database("postgresql", tmp_path / "db") as url:
        settings = load_settings(data_dir=tmp_path / "data", database_url=url)
        store = open_store(url)
        service = IngestService(store, settings)
        service.register("m", reference, prediction="pred", segments=["region"])
        name = url.rsplit("/", 1)[1]
        admin, _ = _pg_admin()
        worker = ProcessorProcess(settings)
        with admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            try:
                worker.start()
                seen = []

                def waiting() -> bool:
                    seen.append(capfd.readouterr().err)
                    return "the processor waits for the database" in "".join(seen)

                wait_for(waiting, "the processor process to find the database closed", 60)
                time.sleep(1.5)  # a second attempt, still closed
                assert worker._child.is_alive() and worker.restarts == 0
            finally:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        try:
            body = json.dumps({"events": make_events(["a", "b"])}).encode()
            assert service.ingest("m", body, "application/json").accepted == 2
            wait_for(lambda: worker.events_processed == 2, "the processor to work the log", 60)
            assert worker.restarts == 0
        finally:
            worker.stop()


def test_a_commit_stands_when_its_connection_dies_right_after(
    tmp_path: Path, open_store: Callable[[str], Store]
) -> None:
    """The backend is terminated between the commit and the end of ``store.write`` (while
    the on-commit actions run, one of which fails on the dead connection): the write still
    returns what it committed, and the next write gets a new connection."""
    with make_database("postgresql", tmp_path / "db") as url:
        store = open_store(url)
        admin, _ = _pg_admin()
        with admin:

            def body(conn: sa.Connection) -> str:
                store.add_counts(conn, "m", {"n": 1})
                pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()

                def after() -> None:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    conn.execute(sa.text("SELECT 1"))  # a cleanup touching the connection

                store.on_commit(conn, after)
                return "committed"

            assert store.write(body) == "committed"
        assert store.counters("m") == {"n": 1}
        store.bump("m", {"n": 1})
        assert store.counters("m") == {"n": 2}
