"""Fault injection under a steady load: what clients were told is what is stored.

Two clients post Arrow batches of fresh ids without pause and retry a batch (the same ids)
until a 2xx, as a real client does. Meanwhile the suite ``kill -9``s the server, then its
processor process alone, twice each, and then the backend's own fault: on PostgreSQL every
connection of the service is terminated (``pg_terminate_backend``) again and again mid-ingest,
on SQLite the disk (a small tmpfs holding the database and the lake) is filled up and, a few
seconds later, freed. At the end, once the processor has drained the log:

* acknowledged == stored, exactly once: the set of ids answered with a 2xx is the set in the
  prediction index and in the lake, each id once, and the model counts as many events;
* a client only ever saw a 2xx or a 503 (with ``Retry-After``); a connection refused or reset
  while the server was down is counted apart.

Marked ``faults`` (``pytest -m faults`` runs the suite alone) and ``slow`` (CI runs it; the
README's plain ``pytest`` does not).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.service.faults import Load, kill_processor, wait_processing
from tests.service.fixtures import (
    BACKENDS,
    ServerFactory,
    fill,
    lake_counts,
    make_database,
    small_filesystem,
    stored_ids,
    terminate_backends,
)
from watchkeeper.store.state import Store

pytestmark = [pytest.mark.slow, pytest.mark.faults]

PHASE_EVENTS = 20_000  # acknowledged between two faults; 6 phases, 2 backends: 240k at least
DISK_MIB = 256  # the SQLite phase's tmpfs: the run's database and lake need about a third
DISK_FULL_SECONDS = 3.0  # full, after the first request it made fail
TERMINATIONS = 5  # PostgreSQL: rounds of pg_terminate_backend, TERMINATE_EVERY seconds apart
TERMINATE_EVERY = 0.4


@pytest.fixture(params=BACKENDS)
def faulty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``(database_url, data_dir)``; on SQLite both live on a small tmpfs (``tmp_path/disk``)."""
    if request.param == "postgresql":
        with make_database("postgresql", tmp_path / "db") as url:
            yield url, tmp_path / "data"
        return
    with (
        small_filesystem(tmp_path / "disk", DISK_MIB) as disk,
        make_database("sqlite", disk / "db") as url,
    ):
        yield url, disk / "data"


def disk_full(load: Load, disk: Path) -> str:
    """Fill the disk under the load until a request is refused (SQLite may first fill the
    free room of its files), keep it full a few seconds more, free it."""
    before = load.statuses_now()

    def refused() -> int:
        return sum(n for s, n in (load.statuses_now() - before).items() if s // 100 != 2)

    filler = fill(disk)
    try:
        deadline = time.monotonic() + 30
        while not refused() and time.monotonic() < deadline:
            time.sleep(0.05)
        full_for = 30 - (deadline - time.monotonic())
        time.sleep(DISK_FULL_SECONDS)
    finally:
        filler.unlink()
    during = load.statuses_now() - before
    assert refused(), f"no request was refused in 30 s of a full disk: {dict(during)}"
    return (
        f"disk full for {full_for + DISK_FULL_SECONDS:.1f} s (first refusal after "
        f"{full_for:.1f} s): statuses meanwhile {dict(during)}"
    )


def terminate(load: Load, database_url: str) -> str:
    """End the service's PostgreSQL connections, again and again, under the load."""
    ended = []
    for _ in range(TERMINATIONS):
        ended.append(terminate_backends(database_url))
        time.sleep(TERMINATE_EVERY)
    assert sum(ended) > 0, "no connection of the service was terminated"
    return f"PostgreSQL connections terminated: {ended}"


def test_acknowledged_is_stored_exactly_once_through_kills_and_database_faults(
    faulty_database: tuple[str, Path],
    server: ServerFactory,
    reference: pa.Table,
    register: Callable[..., str],
    wait_for: Callable[..., None],
    open_store: Callable[[str], Store],
) -> None:
    database_url, data_dir = faulty_database
    srv = server(database_url, data_dir=data_dir)
    with srv.client() as client:
        model = register(client, reference)
    log: list[str] = []
    with Load(srv, model, tag="f") as load:
        for _ in range(2):
            load.wait(PHASE_EVENTS)
            wait_processing(srv)  # the kill lands mid-processing too
            srv.restart()  # kill -9, then start on the same data directory and database
            log.append(f"server killed at {load.acknowledged_count} acknowledged")
            load.wait(PHASE_EVENTS)
            wait_processing(srv)
            pid = kill_processor(srv)
            log.append(f"processor killed at {load.acknowledged_count}; new pid {pid}")
        load.wait(PHASE_EVENTS)
        wait_processing(srv)
        if database_url.startswith("postgresql"):
            log.append(terminate(load, database_url))
        else:
            log.append(disk_full(load, data_dir.parent))
        load.wait(PHASE_EVENTS)
    story = "; ".join([*log, load.summary()])
    assert not load.problems, f"{load.problems[:5]} ({story})"

    with srv.client() as client:
        wait_for(
            lambda: client.get(f"/v1/models/{model}").json()["events_pending"] == 0,
            "the processor to drain the log",
            timeout=180,
        )
        status: dict[str, Any] = client.get(f"/v1/models/{model}").json()
    acknowledged = load.acknowledged
    stored = stored_ids(open_store(database_url), model)
    failures = []
    if len(stored) != len(set(stored)):
        failures.append(f"{len(stored) - len(set(stored))} ids stored more than once")
    if lost := acknowledged - set(stored):
        failures.append(f"{len(lost)} acknowledged ids lost, e.g. {sorted(lost)[:3]}")
    if extra := set(stored) - acknowledged:
        failures.append(f"{len(extra)} ids stored but never acknowledged: {sorted(extra)[:3]}")
    if status["events_total"] != len(acknowledged):
        failures.append(f"events_total {status['events_total']} != {len(acknowledged)}")
    counts = lake_counts(srv, model)
    if set(counts) != acknowledged or set(counts.values()) != {1}:
        twice = sum(1 for n in counts.values() if n > 1)
        failures.append(
            f"lake: {len(counts)} ids ({twice} more than once) for {len(acknowledged)} acknowledged"
        )
    if unexpected := load.unexpected_statuses():
        failures.append(f"statuses other than 2xx and 503 answered: {unexpected}")
    assert not failures, f"{failures} ({story})"
    print(story)  # pytest -s shows what the run went through
    assert len(acknowledged) >= 6 * PHASE_EVENTS
