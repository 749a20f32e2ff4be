"""Starting a replica: alive at once, ready only once migrated; one process per SQLite file.

* While another process holds the migrations' lock (as a replica migrating the shared
  PostgreSQL does), a starting ``watchkeeper serve`` answers ``/healthz`` 200 (``starting``,
  its replica id) and ``/readyz`` 503; an API request waits; once the lock is released the
  replica migrates, ``/readyz`` turns 200 and the waiting request is answered.
* A second ``watchkeeper serve`` on the same SQLite file (another data directory) refuses to
  start with one line and exit code 3: SQLite runs one service process.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.service.fixtures import ServerFactory, _command, _free_port, make_database
from watchkeeper.store.migrations import LOCK_KEY

pytestmark = [pytest.mark.slow]


def test_a_replica_is_alive_but_not_ready_while_the_migrations_wait(
    server: ServerFactory, tmp_path: Path
) -> None:
    with make_database("postgresql", tmp_path / "db") as url:
        with psycopg.connect(url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])  # "another replica"
            srv = server(url, env={"WATCHKEEPER_REPLICA_ID": "replica-a"}, wait=False)
            srv.wait_ready(running=False)  # /healthz answers, the migrations cannot run
            health = httpx.get(f"{srv.url}/healthz", timeout=5).json()
            assert health["status"] == "starting" and health["phase"] == "migrating", health
            assert health["replica"] == "replica-a"
            ready = httpx.get(f"{srv.url}/readyz", timeout=5)
            assert ready.status_code == 503 and ready.headers["retry-after"], ready.text
            assert ready.json()["error"]["type"] == "NotReady"
            answers: list[httpx.Response] = []
            waiting = threading.Thread(
                target=lambda: answers.append(httpx.get(f"{srv.url}/v1/models", timeout=120))
            )
            waiting.start()
            time.sleep(1.0)
            assert not answers, "an API request was answered before the service ran"
            holder.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
        deadline = time.monotonic() + 120
        while httpx.get(f"{srv.url}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "not ready 120 s after the lock was released"
            time.sleep(0.1)
        waiting.join(timeout=120)
        assert answers and answers[0].status_code == 200, answers
        health = httpx.get(f"{srv.url}/healthz", timeout=5).json()
        assert health["status"] == "ok" and health["replica"] == "replica-a"
        srv.kill()


def test_a_second_service_on_one_sqlite_file_refuses_to_start(
    server: ServerFactory, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    first = server(database, data_dir=tmp_path / "one")
    cmd = [*_command(), "serve", "--port", str(_free_port()), "--data-dir", str(tmp_path / "two")]
    second = subprocess.run(
        [*cmd, "--database", database], check=False, capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 3, second.stderr
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith("watchkeeper: error:") and "in use by another watchkeeper" in last
    assert "PostgreSQL" in last, last
    assert httpx.get(f"{first.url}/readyz", timeout=5).status_code == 200  # the first runs on
