"""The SDK against a real ``watchkeeper serve`` in a subprocess: delivery, outages, restarts,
the spool, the monitor decorator / context manager and the ASGI middleware. No mocks.

The caller-thread cost is measured by ``benchmarks/sdk_overhead.py``, not asserted here.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from watchkeeper.sdk import Client, WatchkeeperMiddleware, default_spool_dir, new_prediction_id
from watchkeeper.sdk._events import line_events

START_TIMEOUT = 45.0
FAST = {  # a client that notices outages and recoveries quickly
    "flush_interval": 0.05,
    "backoff_base": 0.05,
    "max_backoff": 0.3,
    "spool_after": 2,
    "timeout": 5.0,
}


# ------------------------------------------------------------------------------ the server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _watchkeeper() -> list[str]:
    script = Path(sys.executable).with_name("watchkeeper")
    return [str(script)] if script.exists() else [sys.executable, "-m", "watchkeeper.cli"]


class Server:
    """``watchkeeper serve`` on a fixed port and data directory; stop and start at will."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.token: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *_watchkeeper(),
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.skip(f"watchkeeper serve did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def request(self, method: str, path: str, body: bytes | None = None, ctype: str = "") -> Any:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if ctype:
            req.add_header("Content-Type", ctype)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def register(self, model: str) -> None:
        buf = io.BytesIO()
        pq.write_table(reference(), buf)
        path = f"/v1/models/{model}/versions/v1?target=label"
        self.request("PUT", path, buf.getvalue(), "application/vnd.apache.parquet")

    def status(self, model: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/models/{model}"))

    def wait_for(self, model: str, field: str, value: int, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            got = int(self.status(model)[field])
            if got == value or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    def lake(self, model: str) -> list[dict[str, Any]]:
        """Events the processor wrote to the Parquet lake (after ``events_pending`` is 0)."""
        self.wait_for(model, "events_pending", 0)
        files = sorted((self.data_dir / "lake" / f"model={model}").rglob("*.parquet"))
        return [row for f in files for row in pq.read_table(f).to_pylist()]


def reference(n: int = 400) -> pa.Table:
    return pa.table(
        {
            "x": [float(i % 40) for i in range(n)],
            "color": ["red", "blue", "green", "red"] * (n // 4),
            "label": ["yes", "no"] * (n // 2),
        }
    )


def prepare(data_dir: Path, *, token: bool = False) -> str | None:
    """Register model ``m`` (and create a token) in ``data_dir`` in-process, the server down:
    the same service code the server runs, without paying for a server start."""
    from watchkeeper.ingest.service import IngestService
    from watchkeeper.settings import Settings
    from watchkeeper.store.state import Store
    from watchkeeper.store.tokens import create_token

    settings = Settings(data_dir=data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.sqlalchemy_url)
    try:
        IngestService(store, settings).register("m", reference(), version="v1", target="label")
        return create_token(store, "sdk", ["ingest", "read", "admin"]) if token else None
    finally:
        store.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server shared by this module's tests; each test registers models of its own.
    ``max_batch_events=300`` makes every full batch of 500 hit 413, so splitting is always on."""
    srv = Server(
        tmp_path_factory.mktemp("shared") / "data", {"WATCHKEEPER_MAX_BATCH_EVENTS": "300"}
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own with model ``m`` registered, not started."""
    srv = Server(tmp_path / "data")
    prepare(srv.data_dir)
    yield srv
    srv.stop()


@pytest.fixture
def model(server: Server, request: pytest.FixtureRequest) -> str:
    name = f"{request.node.name.removeprefix('test_')[:40]}-{uuid.uuid4().hex[:6]}"
    server.register(name)
    return name


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(url: str, **kwargs: Any) -> Client:
        kwargs.setdefault("spool_dir", tmp_path / "spool")
        client = Client(url, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(timeout=0)


def features(i: int) -> dict[str, Any]:
    return {"x": float(i % 40), "color": ("red", "blue", "green")[i % 3]}


def spool_lines(directory: Path) -> int:
    """The events in the spool (a marshalled line holds several)."""
    lines = (line for p in directory.glob("*.jsonl") for line in p.read_bytes().splitlines())
    return sum(map(line_events, lines))


# ------------------------------------------------------------------------------ no server
def test_importing_the_sdk_loads_only_the_standard_library() -> None:
    """``watchkeeper.sdk`` and everything it imports is standard library. The parent package is
    stubbed, because ``watchkeeper/__init__.py`` itself imports the statistics core."""
    code = (
        "import importlib.util, json, sys, types\n"
        "spec = importlib.util.find_spec('watchkeeper')\n"
        "pkg = types.ModuleType('watchkeeper')\n"
        "pkg.__path__ = list(spec.submodule_search_locations)\n"
        "sys.modules['watchkeeper'] = pkg\n"
        "before = set(sys.modules)\n"
        "import watchkeeper.sdk\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert "watchkeeper.sdk" in loaded
    outside = [
        m
        for m in loaded
        if not m.startswith("watchkeeper.sdk") and m.split(".")[0] not in sys.stdlib_module_names
    ]
    assert outside == []


def test_prediction_ids_are_random_uuid4_hex() -> None:
    ids = {new_prediction_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and uuid.UUID(i).version == 4 for i in ids)


def test_invalid_settings_name_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        Client("http://127.0.0.1:9", batch_size=0, spool_dir=tmp_path)
    with pytest.raises(ValueError, match="url must be"):
        Client("ftp://example.org", spool_dir=tmp_path)


def test_default_spool_dir_is_per_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a, b = default_spool_dir("http://127.0.0.1:8700"), default_spool_dir("https://wk.example/x")
    assert a == tmp_path / "watchkeeper" / "spool" / "127.0.0.1_8700"
    assert b.parent == a.parent and a != b


def test_a_full_buffer_spills_to_the_spool_and_drops_nothing(
    tmp_path: Path, make_client: Callable[..., Client]
) -> None:
    client = make_client(
        f"http://127.0.0.1:{_free_port()}", batch_size=10, max_buffer=20, flush_interval=60
    )
    for i in range(1000):
        client.log_prediction("m", features(i), "yes")
    assert client.close(timeout=0) is False
    stats = client.stats
    assert stats.dropped == 0
    assert spool_lines(tmp_path / "spool") == 1000 == stats.spooled


# ------------------------------------------------------------------------------ delivery
def test_2000_predictions_arrive(
    server: Server, model: str, make_client: Callable[..., Client]
) -> None:
    client = make_client(server.url)
    ids = [client.log_prediction(model, features(i), "yes", latency_ms=2.5) for i in range(2000)]
    assert len(set(ids)) == 2000
    assert client.flush(timeout=30)
    assert server.status(model)["events_total"] == 2000
    stats = client.stats
    assert (stats.acknowledged, stats.rejected, stats.dropped, stats.buffered) == (2000, 0, 0, 0)
    assert stats.sent == 4000  # each batch of 500 once whole (413 here), then as two halves


def test_resending_the_same_ids_is_counted_as_duplicates(
    server: Server, model: str, make_client: Callable[..., Client]
) -> None:
    client = make_client(server.url)
    for _ in range(2):
        for i in range(300):
            client.log_prediction(model, features(i), "no", prediction_id=f"id-{i}")
        assert client.flush(timeout=30)
    status = server.status(model)
    assert (status["events_total"], status["duplicates_total"]) == (300, 300)
    assert (client.stats.acknowledged, client.stats.duplicates) == (300, 300)


def test_rejected_events_are_counted_not_retried(
    server: Server, model: str, make_client: Callable[..., Client]
) -> None:
    client = make_client(server.url)
    client.log_prediction(model, {"x": "not a number", "color": "red"}, "yes")
    client.log_prediction(model, features(1), "yes")
    assert client.flush(timeout=30)
    stats = client.stats
    assert (stats.acknowledged, stats.rejected, stats.retries) == (1, 1, 0)
    assert "expected a number" in (stats.last_error or "")
    assert server.status(model)["quarantined_total"] == 1


def test_an_unknown_model_is_dropped_and_reported(
    server: Server, make_client: Callable[..., Client]
) -> None:
    client = make_client(server.url, **FAST)
    client.log_prediction("no-such-model", features(0), "yes")
    assert client.flush(timeout=10)
    stats = client.stats
    assert (stats.rejected, stats.retries, stats.spooled) == (1, 0, 0)
    assert "HTTP 404" in (stats.last_error or "")


def test_actuals_join_the_predictions(
    server: Server, model: str, make_client: Callable[..., Client]
) -> None:
    client = make_client(server.url)
    ids = [client.log_prediction(model, features(i), "yes") for i in range(50)]
    for pid in ids[:40]:
        client.log_actual(model, pid, "no")
    client.log_actual(model, "never-predicted", "no")
    assert client.flush(timeout=30)
    status = server.status(model)
    assert (status["actuals_total"], status["actuals_unmatched_total"]) == (40, 1)
    assert client.stats.acknowledged == 50 + 41
    with pytest.raises(ValueError, match="label"):
        client.log_actual(model, ids[0], None)


def test_odd_values_are_sent_not_lost(
    server: Server, model: str, make_client: Callable[..., Client]
) -> None:
    """A list prediction (a 500 from the server if sent as is), a datetime timestamp, an
    exception as the error, tuples: the sender turns each into something the server takes."""
    from datetime import UTC, datetime

    client = make_client(server.url)
    client.log_prediction(model, features(0), [1, 2], prediction_id="list")
    when = datetime(2024, 5, 1, 10, tzinfo=UTC)
    client.log_prediction(model, features(1), "yes", prediction_id="time", timestamp=when)
    client.log_prediction(
        model, features(2), None, prediction_id="err", status="error", error=KeyError("k")
    )
    assert client.flush(timeout=30)
    assert client.stats.acknowledged == 3
    rows = {r["prediction_id"]: r for r in server.lake(model)}
    assert rows["list"]["prediction"] == "[1,2]"
    assert rows["time"]["event_time"] == when.timestamp()
    assert rows["err"]["error"] == "KeyError: 'k'"


# ------------------------------------------------------------------------------ outages
@pytest.mark.slow
def test_events_logged_during_an_outage_arrive_when_the_server_returns(
    fresh_server: Server, tmp_path: Path, make_client: Callable[..., Client]
) -> None:
    client = make_client(fresh_server.url, **FAST)
    for i in range(1000):
        client.log_prediction("m", features(i), "yes")
    assert client.flush(timeout=1.0) is False  # the server is down: into the spool
    assert spool_lines(tmp_path / "spool") == 1000
    assert client.stats.spooled >= 1000 and client.stats.dropped == 0

    fresh_server.start()  # same port, same data directory; no further call on the client
    assert fresh_server.wait_for("m", "events_total", 1000) == 1000
    deadline = time.monotonic() + 10
    while spool_lines(tmp_path / "spool") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spool_lines(tmp_path / "spool") == 0
    time.sleep(0.5)
    assert fresh_server.status("m")["events_total"] == 1000  # exactly once
    assert client.stats.resent >= 1000


@pytest.mark.slow
def test_a_new_client_resends_the_spool_of_a_closed_one(
    fresh_server: Server, tmp_path: Path, make_client: Callable[..., Client]
) -> None:
    first = make_client(fresh_server.url, **FAST)
    ids = [first.log_prediction("m", features(i), "yes") for i in range(700)]
    assert first.close(timeout=0.5) is False
    assert spool_lines(tmp_path / "spool") == 700

    fresh_server.start()
    second = make_client(fresh_server.url, **FAST)
    assert second.flush(timeout=30)
    assert fresh_server.status("m")["events_total"] == 700
    assert second.stats.resent == 700
    assert spool_lines(tmp_path / "spool") == 0
    assert {r["prediction_id"] for r in fresh_server.lake("m")} == set(ids)


@pytest.mark.slow
def test_two_live_clients_never_send_each_others_spool(
    fresh_server: Server, tmp_path: Path, make_client: Callable[..., Client]
) -> None:
    """Two processes (here: two clients) sharing a spool directory each resend only their own
    segments while both live: the spool lock."""
    a = make_client(fresh_server.url, **FAST)
    for i in range(100):
        a.log_prediction("m", features(i), "yes")
    assert a.flush(timeout=0.5) is False
    fresh_server.start()
    b = make_client(fresh_server.url, **FAST)
    b.log_prediction("m", features(0), "yes")
    assert b.flush(timeout=30)
    assert b.stats.resent == 0  # a's active segment is locked: not b's to send
    assert a.flush(timeout=30)
    assert fresh_server.status("m")["events_total"] == 101


def test_a_torn_spool_line_is_skipped_and_counted(
    server: Server, model: str, tmp_path: Path, make_client: Callable[..., Client]
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    good = [
        json.dumps(
            {"v": 1, "k": "p", "m": model, "e": {"prediction_id": f"s{i}", "features": features(i)}}
        )
        for i in range(3)
    ]
    (spool / "00000000000000000001-1-crashed.jsonl").write_text("\n".join(good) + '\n{"v": 1, "k"')
    client = make_client(server.url, spool_dir=spool)
    assert client.flush(timeout=30)
    assert server.status(model)["events_total"] == 3
    assert client.stats.dropped == 1
    assert not list(spool.glob("*.jsonl"))


def test_register_from_a_file_or_a_frame_and_clear_errors(
    server: Server, tmp_path: Path, make_client: Callable[..., Client]
) -> None:
    from watchkeeper.sdk import RequestError

    client = make_client(server.url)
    name = f"reg-{uuid.uuid4().hex[:6]}"
    path = tmp_path / "train.parquet"
    pq.write_table(reference(), path)
    answer = client.register(
        name, path, target="label", segments=["color"], drift_reference="previous_window"
    )
    assert answer["reference_rows"] == 400 and answer["version"] == "v1"
    status = server.status(name)
    assert status["segments"] == ["color"] and status["drift_reference"] == "previous_window"
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(reference().to_pydict())
    assert client.register(name, frame, version="v2", champion=False)["version"] == "v2"
    assert server.status(name)["champion"] == "v1"
    with pytest.raises(RequestError, match=r"HTTP 409: .*v2") as err:
        client.register(name, frame, version="v2")
    assert err.value.status == 409
    with pytest.raises(ValueError, match=r"expected a \.parquet, \.csv or \.arrow file"):
        client.register(name, tmp_path / "train.xlsx")
    with pytest.raises(RequestError, match="HTTP 4"):
        client.register(name, path, version="v3", drift_reference="sometimes")
    # one name given as a string is one column, not its characters
    single = f"one-{uuid.uuid4().hex[:6]}"
    client.register(single, path, target="label", segments="color")
    assert server.status(single)["segments"] == ["color"]
    with pytest.raises(ValueError, match="segments: 'a,b' is not a column name"):
        client.register(single, path, version="v4", segments=["a,b"])


def test_the_register_command(server: Server, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    path = tmp_path / "train.csv"
    pcsv.write_csv(reference(), path)
    env = {**os.environ, "WATCHKEEPER_URL": server.url}

    def register(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_watchkeeper(), "register", *args],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip

    done = register(name, str(path), "--target", "label", "--segments", "color")
    assert done.returncode == 0, done.stderr
    assert f"registered {name} v1 with a 400-row reference (champion)" in done.stdout
    rows = [line.split()[:3] for line in done.stdout.splitlines()]
    assert ["label", "target", "categorical"] in rows and [
        "color",
        "segment",
        "categorical",
    ] in rows
    assert server.status(name)["segments"] == ["color"]
    again = register(name, str(path))
    assert again.returncode == 2
    [line] = again.stderr.strip().splitlines()
    assert line.startswith("watchkeeper: error: 409 ConflictError: ") and "'v1'" in line, line
    missing = register(name, str(tmp_path / "nope.parquet"), "--version", "v2")
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1
    assert "nope.parquet: no such file" in missing.stderr


def test_direct_requests_wait_for_the_answer(server: Server, tmp_path: Path) -> None:
    """``request()`` and ``register()``: the public transport the command line uses, with no
    client (no thread, no spool)."""
    from watchkeeper.sdk import RequestError, register, request

    name = f"direct-{uuid.uuid4().hex[:6]}"
    path = tmp_path / "train.parquet"
    pq.write_table(reference(), path)
    answer = register(server.url, name, path, target="label", segments=["color"])
    assert answer["version"] == "v1" and server.status(name)["segments"] == ["color"]
    assert request(server.url, "GET", f"/v1/models/{name}")["champion"] == "v1"
    created = request(
        server.url, "POST", "/v1/silences", {"matchers": {"model": name}, "duration": "1h"}
    )
    assert request(server.url, "DELETE", f"/v1/silences/{created['id']}") is not None
    with pytest.raises(RequestError) as err:
        register(server.url, name, path)
    assert (err.value.status, err.value.error_type) == (409, "ConflictError")
    assert str(err.value).startswith("HTTP 409: ") and "'v1'" in err.value.message
    with pytest.raises(RequestError) as missing:
        request(server.url, "GET", "/v1/alerts/999999")
    assert (missing.value.status, missing.value.error_type) == (404, "NotFoundError")
    with pytest.raises(FileNotFoundError, match=r"nope\.parquet: no such file"):
        register(server.url, name, tmp_path / "nope.parquet")
    with pytest.raises(
        ConnectionError, match=r"^cannot reach the service at http://127\.0\.0\.1:9: "
    ):
        request("http://127.0.0.1:9", "GET", "/v1/alerts")


@pytest.mark.slow
def test_the_bearer_token_is_sent(tmp_path: Path, make_client: Callable[..., Client]) -> None:
    srv = Server(tmp_path / "data", {"WATCHKEEPER_REQUIRE_TOKENS": "true"})
    srv.token = prepare(srv.data_dir, token=True)
    srv.start()
    try:
        with_token = make_client(srv.url, token=srv.token)
        with_token.log_prediction("m", features(0), "yes")
        assert with_token.flush(timeout=30)
        # without a token nothing is lost: the event waits in the spool for a working token
        without = make_client(srv.url, spool_dir=tmp_path / "other", spool_after=1)
        without.log_prediction("m", features(1), "yes")
        assert not without.flush(timeout=3)
        assert srv.status("m")["events_total"] == 1
        assert without.stats.rejected == 0 and "HTTP 401" in (without.stats.last_error or "")
        assert without.close(timeout=5) is False  # still not delivered: it stays spooled
        fixed = make_client(srv.url, token=srv.token, spool_dir=tmp_path / "other")
        assert fixed.flush(timeout=30)
        assert srv.status("m")["events_total"] == 2
    finally:
        srv.stop()


# ------------------------------------------------------------------------------ monitor
def test_the_decorator_logs_outputs_latency_and_errors(
    server: Server, model: str, make_client: Callable[..., Client]
) -> None:
    client = make_client(server.url)
    monitor = client.monitor(model)

    @monitor
    def predict(row: dict[str, Any]) -> str:
        if row["x"] < 0:
            raise ValueError("x must not be negative")
        time.sleep(0.01)
        return "yes"

    assert predict({"x": 1.0, "color": "red"}) == "yes"
    ok_id = monitor.last_prediction_id
    with pytest.raises(ValueError, match="negative"):
        predict({"x": -1.0, "color": "red"})
    error_id = monitor.last_prediction_id
    assert client.flush(timeout=30)
    rows = {r["prediction_id"]: r for r in server.lake(model)}
    assert rows[ok_id]["prediction"] == "yes" and rows[ok_id]["status"] == "ok"
    assert rows[ok_id]["latency_ms"] >= 10
    assert rows[error_id]["status"] == "error"
    assert rows[error_id]["error"] == "ValueError: x must not be negative"
    assert rows[error_id]["x"] == -1.0


def test_the_decorator_takes_keyword_features_and_async_functions(
    server: Server, model: str, make_client: Callable[..., Client]
) -> None:
    client = make_client(server.url)
    monitor = client.monitor(model)

    @monitor
    def by_keywords(*, x: float, color: str) -> str:
        return "no"

    @monitor
    async def predict_async(row: dict[str, Any]) -> str:
        await asyncio.sleep(0)
        return "yes"

    by_keywords(x=3.0, color="blue")
    kw_id = monitor.last_prediction_id
    assert asyncio.run(predict_async({"x": 4.0, "color": "green"})) == "yes"
    assert client.flush(timeout=30)
    rows = {r["prediction_id"]: r for r in server.lake(model)}
    assert (rows[kw_id]["x"], rows[kw_id]["color"], rows[kw_id]["prediction"]) == (
        3.0,
        "blue",
        "no",
    )
    assert sum(r["prediction"] == "yes" and r["x"] == 4.0 for r in rows.values()) == 1


def test_the_context_manager_logs_and_reraises(
    server: Server, model: str, make_client: Callable[..., Client]
) -> None:
    client = make_client(server.url)
    with client.monitor(model) as obs:
        obs.features = features(5)
        obs.prediction = "no"
        obs.scores = {"yes": 0.2, "no": 0.8}
    with pytest.raises(RuntimeError), client.monitor(model) as failed:
        failed.features = features(6)
        raise RuntimeError("model crashed")
    assert client.flush(timeout=30)
    rows = {r["prediction_id"]: r for r in server.lake(model)}
    assert rows[obs.prediction_id]["prediction"] == "no"
    assert rows[obs.prediction_id]["score.no"] == 0.8
    assert rows[failed.prediction_id]["error"] == "RuntimeError: model crashed"


# ------------------------------------------------------------------------------ middleware
def test_the_middleware_logs_each_prediction_request(
    server: Server, model: str, make_client: Callable[..., Client]
) -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def predict(request: Request) -> JSONResponse:
        body = await request.json()
        if body["x"] < 0:
            raise RuntimeError("negative x")
        if body["x"] > 100:
            return JSONResponse({"detail": "x too large"}, 400)
        label = "yes" if body["x"] > 1 else "no"
        return JSONResponse({"prediction": label, "scores": {"yes": 0.7, "no": 0.3}})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    client = make_client(server.url)
    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])
    app.add_middleware(WatchkeeperMiddleware, client=client, model=model)

    async def drive() -> tuple[httpx.Response, ...]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
            ok = await http.post("/predict", json={"x": 2.0, "color": "red"})
            given = await http.post(
                "/predict", json={"x": 0.5, "color": "blue"}, headers={"X-Prediction-Id": "req-1"}
            )
            failed = await http.post("/predict", json={"x": -1.0, "color": "green"})
            too_large = await http.post("/predict", json={"x": 500.0, "color": "red"})
            healthy = await http.get("/health")
            return ok, given, failed, too_large, healthy

    ok, given, failed, too_large, healthy = asyncio.run(drive())
    assert (too_large.status_code, healthy.status_code) == (400, 200)
    assert (ok.status_code, given.status_code, failed.status_code) == (200, 200, 500)
    assert given.headers["x-prediction-id"] == "req-1"
    assert client.flush(timeout=30)
    rows = {r["prediction_id"]: r for r in server.lake(model)}
    assert len(rows) == 3  # not the 400, not /health
    first = rows[ok.headers["x-prediction-id"]]
    assert (first["x"], first["prediction"], first["score.yes"], first["status"]) == (
        2.0,
        "yes",
        0.7,
        "ok",
    )
    assert first["latency_ms"] > 0
    assert rows["req-1"]["prediction"] == "no"
    # an exception escapes before any response starts: no id header, but the event is logged
    (crash,) = [r for r in rows.values() if r["status"] == "error"]
    assert (crash["x"], crash["error"]) == (-1.0, "RuntimeError: negative x")
