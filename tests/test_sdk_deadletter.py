"""The SDK's dead letters: a batch the server refuses for good never blocks the rest.

Against a real ``watchkeeper serve`` (see ``test_sdk.py``), with a small real HTTP server on
loopback in front of it where a test needs an answer the server does not give on its own: the
500 PostgreSQL caused for a whole batch with one label over 400 characters, a 400 for a
prediction id over 200, 503s and 401/403s that pass. Everything else is forwarded. No mocks.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.test_sdk import FAST, Server, features
from watchkeeper.sdk import Client, DeadLetter

# what a rule answers instead of the server: (status, JSON body, headers)
Answer = tuple[int, dict[str, Any], dict[str, str]]
Rule = Callable[[int, str, dict[str, Any]], Answer | None]


@dataclass(frozen=True)
class Seen:
    time: float  # time.monotonic() when answered
    path: str
    status: int
    ids: tuple[str, ...]


class Gate:
    """A loopback HTTP server that forwards each POST to ``upstream`` unless ``rule(n, path,
    body)`` answers it (``n`` counts the POSTs from 0); records every answer in ``seen``."""

    def __init__(self, upstream: str, rule: Rule) -> None:
        self.rule, self.seen, self._lock = rule, list[Seen](), threading.RLock()
        target = urlsplit(upstream)
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw)
                with gate._lock:
                    n = len(gate.seen)
                    answer = gate.rule(n, self.path, body)
                if answer is None:
                    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    conn.request("POST", self.path, raw, headers)
                    resp = conn.getresponse()
                    status, data, extra = resp.status, resp.read(), {}
                    conn.close()
                else:
                    status, data, extra = answer[0], json.dumps(answer[1]).encode(), answer[2]
                events = body.get("events") or body.get("actuals") or []
                ids = tuple(str(e.get("prediction_id")) for e in events)
                with gate._lock:
                    gate.seen.append(Seen(time.monotonic(), self.path, status, ids))
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def answered(self, status: int) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.status == status]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("deadletter") / "data")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def model(upstream: Server) -> str:
    name = f"dl-{uuid.uuid4().hex[:8]}"
    upstream.register(name)
    return name


@pytest.fixture
def gate(upstream: Server) -> Iterator[Callable[[Rule], Gate]]:
    gates: list[Gate] = []

    def make(rule: Rule) -> Gate:
        gates.append(Gate(upstream.url, rule))
        return gates[-1]

    yield make
    for g in gates:
        g.close()


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(url: str, **kwargs: Any) -> Client:
        clients.append(Client(url, spool_dir=tmp_path / "spool", **{**FAST, **kwargs}))
        return clients[-1]

    yield make
    for client in clients:
        client.close(timeout=0)


def ids_of(letter: DeadLetter) -> tuple[str, ...]:
    return tuple(e["prediction_id"] for e in letter.events)


def too_long_label(n: int, path: str, body: dict[str, Any]) -> Answer | None:
    """PostgreSQL before the fix: a label over 400 characters made the whole batch a 500."""
    if any(len(str(a.get("label"))) > 400 for a in body.get("actuals", [])):
        error = {"type": "InternalError", "message": "value too long for type character varying"}
        return 500, {"error": error}, {}
    return None


# ------------------------------------------------------------------------------ refused for good
def test_one_batch_answered_500_is_dead_lettered_and_1200_predictions_around_it_arrive(
    upstream: Server, model: str, gate: Callable[[Rule], Gate], make_client: Callable[..., Client]
) -> None:
    """The reproduction: a prediction and its label, 1,200 times, one label 401 characters
    long at #200. Today's client retried that actuals batch forever and delivered nothing
    after it; now the batch goes to the dead-letter file and everything else arrives."""
    door = gate(too_long_label)
    client = make_client(door.url, dead_letter_attempts=3, dead_letter_seconds=0.3)
    ids = []
    for i in range(1200):
        pid = client.log_prediction(model, features(i), "yes")
        client.log_actual(model, pid, "x" * 401 if i == 200 else "no")
        ids.append(pid)
    assert client.flush(timeout=60)

    [letter] = client.dead_letters()
    dead = ids_of(letter)
    assert (letter.model, letter.kind, letter.status) == (model, "actuals", 500)
    assert letter.response["error"]["message"].startswith("value too long")
    assert letter.attempts >= 3 and ids[200] in dead
    assert dead == door.answered(500)[-1].ids  # exactly the batch the server refused
    assert len(client.dead_letter_path.read_text().splitlines()) == 1

    status = upstream.status(model)
    assert status["events_total"] == 1200  # every prediction, those after #200 too
    assert status["actuals_total"] == 1200 - len(dead)  # every label but the refused batch
    stats = client.stats
    assert (stats.dead_lettered, stats.dead_letter_batches) == (len(dead), 1)
    assert (stats.acknowledged, stats.rejected, stats.dropped) == (2400 - len(dead), len(dead), 0)
    assert "HTTP 500" in (stats.last_error or "")


def test_a_batch_answered_400_is_dead_lettered_at_once(
    upstream: Server, model: str, gate: Callable[[Rule], Gate], make_client: Callable[..., Client]
) -> None:
    """A 4xx is not retried: the batch with a prediction id over 200 characters goes to the
    dead-letter file on its first answer, with the server's reason, and the rest arrives."""

    def too_long_id(n: int, path: str, body: dict[str, Any]) -> Answer | None:
        if any(len(e["prediction_id"]) > 200 for e in body.get("events", [])):
            error = {"type": "ValidationError", "message": "prediction_id: at most 200 characters"}
            return 400, {"error": error}, {}
        return None

    door = gate(too_long_id)
    client = make_client(door.url)
    for i in range(500):
        client.log_prediction(model, features(i), "yes")
    assert client.flush(timeout=30)
    bad = client.log_prediction(model, features(0), "no", prediction_id="p" * 201)
    assert client.flush(timeout=30)
    for i in range(500, 1000):
        client.log_prediction(model, features(i), "yes")
    assert client.flush(timeout=30)

    [letter] = client.dead_letters()
    assert (letter.status, letter.attempts, ids_of(letter)) == (400, 1, (bad,))
    assert letter.response["error"]["message"] == "prediction_id: at most 200 characters"
    assert [s.ids for s in door.answered(400)] == [(bad,)]  # sent once, never retried
    assert upstream.status(model)["events_total"] == 1000
    stats = client.stats
    assert (stats.dead_lettered, stats.dead_letter_batches, stats.rejected) == (1, 1, 1)
    assert (stats.retries, stats.acknowledged) == (0, 1000)


def test_a_batch_read_from_the_spool_is_dead_lettered_once(
    upstream: Server,
    model: str,
    gate: Callable[[Rule], Gate],
    make_client: Callable[..., Client],
    tmp_path: Path,
) -> None:
    """A spool left by an earlier process: predictions of a model the server does not know
    (404), then 100 predictions and their labels, whose actuals batch meets a passing outage
    (503) twice. The same lines are read again after each 503; the batches the server
    answered are not sent again, so the refused one is one dead letter."""
    unknown = f"gone-{uuid.uuid4().hex[:8]}"
    pids = [f"s{i}" for i in range(100)]
    records = [("p", unknown, {"prediction_id": "x", "features": features(0)})]
    records += [
        ("p", model, {"prediction_id": p, "features": features(i)}) for i, p in enumerate(pids)
    ]
    records += [("a", model, {"prediction_id": p, "label": "no"}) for p in pids]
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "00000000000000000001-1-earlier.jsonl").write_text(
        "".join(json.dumps({"v": 1, "k": k, "m": m, "e": e}) + "\n" for k, m, e in records)
    )

    def passing_outage(n: int, path: str, body: dict[str, Any]) -> Answer | None:
        if "actuals" in body and len(door.answered(503)) < 2:
            return 503, {"error": {"message": "not now"}}, {"Retry-After": "0"}
        return None

    door = gate(passing_outage)
    client = make_client(door.url)
    assert client.flush(timeout=30)
    [letter] = client.dead_letters()
    assert (letter.model, letter.status, ids_of(letter)) == (unknown, 404, ("x",))
    assert [len(door.answered(code)) for code in (404, 503, 200)] == [1, 2, 2]
    status = upstream.status(model)
    assert (status["events_total"], status["actuals_total"]) == (100, 100)
    assert not list(spool.glob("*.jsonl"))


def test_an_unknown_model_is_dead_lettered_and_resent_once_registered(
    upstream: Server, model: str, make_client: Callable[..., Client]
) -> None:
    """The real server's 404: the events of a model not registered yet wait in the
    dead-letter file (today they were dropped) and arrive after ``resend_dead_letters()``."""
    later = f"later-{uuid.uuid4().hex[:8]}"
    client = make_client(upstream.url)
    for i in range(1100):
        client.log_prediction(later if 500 <= i < 550 else model, features(i), "yes")
    assert client.flush(timeout=30)
    letters = client.dead_letters()
    assert {(d.model, d.kind, d.status) for d in letters} == {(later, "predictions", 404)}
    assert sum(len(d.events) for d in letters) == 50 == client.stats.dead_lettered
    assert upstream.status(model)["events_total"] == 1050

    upstream.register(later)
    again = make_client(upstream.url)  # another client of the same spool directory
    assert [d.events for d in again.dead_letters()] == [d.events for d in letters]
    assert again.resend_dead_letters() == 50
    assert again.dead_letters() == []
    assert again.flush(timeout=30)
    assert upstream.status(later)["events_total"] == 50
    assert again.stats.resent == 50 and again.stats.dead_lettered == 0


def test_a_500_is_retried_for_the_whole_bound_before_the_batch_is_dead_lettered(
    upstream: Server, model: str, gate: Callable[[Rule], Gate], make_client: Callable[..., Client]
) -> None:
    door = gate(too_long_label)
    client = make_client(door.url, dead_letter_attempts=2, dead_letter_seconds=1.5)
    pid = client.log_prediction(model, features(0), "yes")
    assert client.flush(timeout=30)
    client.log_actual(model, pid, "x" * 401)
    assert client.flush(timeout=30)
    [letter] = client.dead_letters()
    refused = door.answered(500)
    assert len(refused) == letter.attempts >= 3  # two attempts within 1.5 s are not enough
    assert refused[-1].time - refused[0].time >= 1.5 - 0.1  # the gate's clock, not the client's


# ------------------------------------------------------------------------------ kept, not refused
def test_an_outage_and_a_token_problem_keep_the_events_past_the_bound(
    upstream: Server, model: str, gate: Callable[[Rule], Gate], make_client: Callable[..., Client]
) -> None:
    """502/503/504 (the server or its proxy down) and 401/403 (a token to fix) are not the
    batch's fault: retried however long they last, never dead-lettered, then delivered."""
    answers = [503, 502, 504, 401, 403, 503, 401, 403]

    def flaky(n: int, path: str, body: dict[str, Any]) -> Answer | None:
        if n < len(answers):
            return answers[n], {"error": {"message": "not now"}}, {"Retry-After": "0"}
        return None

    door = gate(flaky)
    client = make_client(door.url, dead_letter_attempts=1, dead_letter_seconds=0)
    for i in range(1000):
        client.log_prediction(model, features(i), "yes")
    assert client.flush(timeout=60)
    assert [s.status for s in door.seen[: len(answers)]] == answers
    assert upstream.status(model)["events_total"] == 1000
    stats = client.stats
    assert (stats.dead_lettered, stats.rejected, stats.dropped) == (0, 0, 0)
    assert stats.retries == len(answers) and stats.acknowledged == 1000
    assert client.dead_letters() == [] and not client.dead_letter_path.exists()


def test_a_500_that_stops_within_the_bound_is_delivered(
    upstream: Server, model: str, gate: Callable[[Rule], Gate], make_client: Callable[..., Client]
) -> None:
    def twice(n: int, path: str, body: dict[str, Any]) -> Answer | None:
        return (500, {"error": {"message": "oops"}}, {}) if n < 2 else None

    door = gate(twice)
    client = make_client(door.url, dead_letter_attempts=3, dead_letter_seconds=0)
    for i in range(300):
        client.log_prediction(model, features(i), "yes")
    assert client.flush(timeout=30)
    assert len(door.answered(500)) == 2
    assert upstream.status(model)["events_total"] == 300
    assert client.stats.dead_lettered == 0 and client.dead_letters() == []


def test_the_bound_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dead_letter_attempts must be at least 1, got 0"):
        Client("http://127.0.0.1:9", dead_letter_attempts=0, spool_dir=tmp_path)
    with pytest.raises(ValueError, match="dead_letter_seconds must be zero or more"):
        Client("http://127.0.0.1:9", dead_letter_seconds=-1, spool_dir=tmp_path)
