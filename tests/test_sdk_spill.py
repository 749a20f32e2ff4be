"""A burst faster than the server: the caller's thread only enqueues, the spiller sheds the
backlog to the spool, and every event arrives exactly once, with the server up throughout
or stopped mid-burst and restarted. Against a real ``watchkeeper serve`` (``test_sdk.py``).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_sdk import FAST, Server, _free_port, features, prepare, spool_lines
from watchkeeper.sdk import Client
from watchkeeper.sdk._events import (
    ACTUAL,
    PREDICTION,
    dumps,
    item_lines,
    line_events,
    parse_spool_lines,
    to_record,
)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own with model ``m`` registered, not started."""
    server = Server(tmp_path / "data")
    prepare(server.data_dir)
    yield server
    server.stop()


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(url: str, **kwargs: Any) -> Client:
        client = Client(url, spool_dir=tmp_path / "spool", **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(timeout=0)


def spool_writers(client: Client) -> set[str]:
    """The names of the threads that write to the client's spool from now on."""
    names: set[str] = set()
    spool = client._spool
    append = spool.append

    def recording(lines: list[bytes], *, sync: bool = True) -> None:
        names.add(threading.current_thread().name)
        append(lines, sync=sync)

    spool.append = recording  # type: ignore[method-assign]
    return names


def burst(client: Client, start: int, stop: int, peak: list[int]) -> list[str]:
    ids = []
    for i in range(start, stop):
        ids.append(client.log_prediction("m", features(i), "yes"))
        peak[0] = max(peak[0], len(client._buffer))
    return ids


def stored_once(server: Server, ids: list[str]) -> None:
    assert server.wait_for("m", "events_total", len(ids), timeout=60) == len(ids)
    stored = [row["prediction_id"] for row in server.lake("m")]
    assert sorted(stored) == sorted(ids)  # each exactly once


def test_a_burst_is_stored_exactly_once_and_the_caller_never_writes_the_spool(
    srv: Server, make_client: Callable[..., Client]
) -> None:
    srv.start()
    client = make_client(srv.url, batch_size=100, max_buffer=500, flush_interval=0.05)
    writers, peak = spool_writers(client), [0]
    ids = burst(client, 0, 6000, peak)
    assert threading.current_thread().name not in writers
    assert peak[0] < 2 * 500  # bounded: a log call waits for the spiller beyond that
    assert client.flush(timeout=60)
    stats = client.stats
    assert stats.spooled > 0 and stats.resent == stats.spooled  # the backlog went to disk
    assert (stats.dropped, stats.buffered) == (0, 0)
    stored_once(srv, ids)


@pytest.mark.slow
def test_a_burst_across_a_server_restart_is_stored_exactly_once(
    srv: Server, tmp_path: Path, make_client: Callable[..., Client]
) -> None:
    srv.start()
    client = make_client(srv.url, batch_size=100, max_buffer=500, **FAST)
    writers, peak = spool_writers(client), [0]
    ids = burst(client, 0, 3000, peak)
    srv.stop()  # mid-burst: the batch in flight fails, the rest is spooled
    ids += burst(client, 3000, 9000, peak)
    assert threading.current_thread().name not in writers
    assert peak[0] < 2 * 500
    srv.start()  # same port and data: the spool is resent without any call
    stored_once(srv, ids)
    assert client.flush(timeout=60)
    assert spool_lines(tmp_path / "spool") == 0
    assert client.stats.dropped == 0


def test_the_buffer_stays_bounded_while_the_server_is_unreachable(
    tmp_path: Path, make_client: Callable[..., Client]
) -> None:
    client = make_client(f"http://127.0.0.1:{_free_port()}", batch_size=10, max_buffer=20)
    writers, peak = spool_writers(client), [0]
    burst(client, 0, 3000, peak)
    assert threading.current_thread().name not in writers
    assert peak[0] < 2 * 20
    assert client.close(timeout=0) is False
    assert spool_lines(tmp_path / "spool") == 3000 == client.stats.spooled
    assert client.stats.dropped == 0


def test_spool_lines_give_back_the_events_json_would_have_written() -> None:
    """Plain items are marshalled (several to a line); anything marshal would not give back
    as it was (a numpy integer becomes bytes, a datetime or an exception it refuses) is
    written as JSON. Read back, each is the event sending it at once would have sent."""
    plain = [
        (PREDICTION, "m", f"p{i}", 1.5 + i, {"x": i, "f": 0.1, 2: None}, "yes", "v1", 2.0,
         {"yes": 0.9}, {"region": "eu"}, "ok", None)
        for i in range(250)
    ]  # fmt: skip
    odd = [
        (PREDICTION, "m", "n", 1.0, {"x": np.int64(3)}, np.float32(0.5), None, None, None,
         None, "ok", None),
        (PREDICTION, "m", "d", dt.datetime(2026, 1, 2, tzinfo=dt.UTC), {"x": True}, [1, 2],
         None, None, None, None, "error", KeyError("k")),
        (PREDICTION, "m", "s", 1.0, {"x": "a"}, 1, None, None, "not a dict", None, "ok", None),
        (ACTUAL, "m", "p1", "no", 3.0),
        (ACTUAL, "m", "p2", {"label": np.int64(1)}, 3.0),
        (PREDICTION, "m", "nan", 1.0, {"x": math.nan, "y": None}, 1, None, None, None, None,
         "ok", None),
    ]  # fmt: skip
    lines, bad = item_lines(plain, 100)
    assert (len(lines), bad) == (3, 0) and [line_events(x) for x in lines] == [100, 100, 50]
    mixed, bad = item_lines(plain[:2] + odd, 100)
    assert bad == 0 and [x[:1] for x in mixed] == [b"M", b"M", b"{", b"{", b"{", b"M", b"{", b"M"]
    for items, encoded in ((plain, lines), (plain[:2] + odd, mixed)):
        records, unreadable = parse_spool_lines(encoded)
        assert unreadable == 0
        assert [dumps(r) for r in records] == [dumps(to_record(i)) for i in items]

    torn = lines[0][:40] + b"\n"
    assert parse_spool_lines([torn, b"not json\n", lines[2]]) == (
        parse_spool_lines([lines[2]])[0],
        101,
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_client_made_before_fork_works_in_the_child(
    srv: Server, make_client: Callable[..., Client]
) -> None:
    """The child notices the fork (register_at_fork, not a getpid per call) on its first log
    calls past ``batch_size`` and sends with a thread and a spool segment of its own."""
    srv.start()
    client = make_client(srv.url, batch_size=10, flush_interval=0.05)
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            for i in range(50):
                client.log_prediction("m", features(i), "yes", prediction_id=f"child-{i}")
            restarted = client._pid == os.getpid()  # by a log call, before any flush
            code = 0 if restarted and client.flush(timeout=30) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client._forked is False  # the parent is not affected
    assert srv.wait_for("m", "events_total", 50) == 50
