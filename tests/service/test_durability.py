"""Nothing acknowledged is lost: the server is SIGKILLed mid-stream and restarted on the same
data directory and database, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pyarrow as pa
import pytest
import sqlalchemy as sa

from tests.service.fixtures import lake_counts, stored_ids
from watchkeeper.evaluation.retention import sweep
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

BATCH = 100  # events per request
KILL_AFTER = 10  # batches the killing client has acknowledged before it kills the server
ROUNDS = 2  # kill, restart (the processor has a backlog), send again, kill again


class Stream:
    """Two clients sending batches of fresh ids as fast as they can. Client ``a`` SIGKILLs
    the server right after its KILL_AFTER-th 2xx; client ``b`` is usually mid-request then."""

    def __init__(self, server: Any, model: str, make_events: Callable[..., Any], tag: str):
        self.server, self.model, self.make_events, self.tag = server, model, make_events, tag
        self.acknowledged: list[str] = []  # ids in a batch answered with a 2xx
        self.unanswered: list[list[str]] = []  # batches whose request failed: in flight
        self.problems: list[str] = []
        self.killed = threading.Event()

    def send(self, name: str) -> None:
        with httpx.Client(base_url=self.server.url, timeout=30) as client:
            for k in range(10**6):
                ids = [f"{self.tag}-{name}-{k}-{i}" for i in range(BATCH)]
                body = json.dumps({"events": self.make_events(ids, seed=k)}).encode()
                try:
                    r = client.post(
                        f"/v1/models/{self.model}/predictions",
                        content=body,
                        headers={"content-type": "application/json"},
                    )
                except httpx.TransportError:
                    self.unanswered.append(ids)
                    return
                if r.status_code // 100 != 2 or r.json()["accepted"] != BATCH:
                    self.problems.append(f"{name}: {r.status_code} {r.text[:300]}")
                    return
                self.acknowledged.extend(ids)
                if name == "a" and k + 1 == KILL_AFTER:
                    self.server.kill()
                    self.killed.set()
                    return
                if self.killed.is_set():
                    return

    def run(self) -> None:
        threads = [threading.Thread(target=self.send, args=(n,)) for n in ("a", "b")]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        assert self.killed.is_set() and not self.problems, self.problems


@pytest.mark.slow
def test_acknowledged_events_survive_sigkill_and_in_flight_retries_store_once(
    database_url: str,
    server: Callable[..., Any],
    reference: pa.Table,
    register: Callable[..., str],
    make_events: Callable[..., Any],
    wait_for: Callable[..., None],
    open_store: Callable[[str], Store],
) -> None:
    srv = server(database_url)
    with srv.client() as client:
        model = register(client, reference)
    acknowledged: set[str] = set()
    unanswered: list[list[str]] = []
    for round_ in range(ROUNDS):
        stream = Stream(srv, model, make_events, f"r{round_}")
        stream.run()
        assert len(stream.acknowledged) >= KILL_AFTER * BATCH
        assert not acknowledged & set(stream.acknowledged)
        acknowledged |= set(stream.acknowledged)
        unanswered += stream.unanswered
        srv.restart()

    with srv.client() as client:
        wait_for(  # the restarted processor indexes what the killed one left in the log
            lambda: client.get(f"/v1/models/{model}").json()["events_pending"] == 0,
            "the processor to catch up after the restart",
            timeout=60,
        )
        status = client.get(f"/v1/models/{model}").json()
    store = open_store(database_url)
    stored = stored_ids(store, model)
    assert len(stored) == len(set(stored)) == status["events_total"]
    missing = acknowledged - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
    # a batch in flight at the kill was committed whole or not at all; nothing else is stored
    committed = [ids for ids in unanswered if set(ids) <= set(stored)]
    assert all(not set(ids) & set(stored) for ids in unanswered if ids not in committed)
    expected = acknowledged.union(*committed)
    assert set(stored) == expected
    assert status["events_total"] == len(acknowledged) + BATCH * len(committed)

    counts = lake_counts(srv, model)
    assert set(counts) == expected and set(counts.values()) == {1}  # each id exactly once
    daily = store.bucket_profiles(model, granularity=86400, segment="*")
    assert sum(row["events"] for row in daily) == len(expected)  # profiles counted once too

    # the periodic retention sweep deletes the processed log (the lake holds the events now);
    # the batches after it must not overwrite the lake files of the ones before
    sweep(store, srv.lake_dir)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.batches)).scalar() == 0

    # the client retries what was never answered: stored once, whatever the server had kept
    with srv.client() as client:
        for ids in unanswered:
            r = client.post(f"/v1/models/{model}/predictions", json={"events": make_events(ids)})
            assert r.status_code == 200, r.text
            result = r.json()
            assert result["accepted"] + result["duplicates"] == len(ids)
            assert result["duplicates"] == (len(ids) if ids in committed else 0)
        everything = acknowledged.union(*unanswered)
        wait_for(
            lambda: client.get(f"/v1/models/{model}").json()["events_pending"] == 0,
            "the processor to catch up after the retries",
        )
        assert client.get(f"/v1/models/{model}").json()["events_total"] == len(everything)
    counts = lake_counts(srv, model)
    assert set(counts) == everything and set(counts.values()) == {1}
    assert sorted(stored_ids(store, model)) == sorted(everything)
