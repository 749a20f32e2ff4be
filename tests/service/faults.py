"""The fault-injection suite's load and faults (``tests/service/test_faults.py``).

* :class:`Load`: client threads posting Arrow batches of fresh prediction ids to a
  :class:`~tests.service.fixtures.Server` as a real client does: a batch is sent again, the
  same ids, after a 503 (honouring ``Retry-After``, at most a second here), any other 5xx or a
  failed connection, until it is answered with a 2xx. Every status and every failed connection
  is counted; the ids of a 2xx are *acknowledged*.
* :func:`processor_pid` / :func:`kill_processor`: the server's processor child process, and
  ``kill -9`` of it alone; :func:`wait_processing`: until the processor is at work.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pyarrow as pa
from pyarrow import ipc

from tests.service.fixtures import Server, events_table

ARROW = {"content-type": "application/vnd.apache.arrow.stream"}
DELIVERY_TIMEOUT = 120.0  # seconds one batch may take, all its retries included


@functools.lru_cache(maxsize=8)
def _template(rows: int, seed: int) -> pa.Table:
    return events_table([""] * rows, seed=seed)


def arrow_body(ids: list[str], seed: int) -> bytes:
    """Events (``events_table``'s, one of four seeds) with ``ids``, as an Arrow IPC stream."""
    table = _template(len(ids), seed % 4)
    table = table.set_column(
        table.schema.get_field_index("prediction_id"), "prediction_id", pa.array(ids)
    )
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


class Load:
    """``clients`` threads posting batches of ``batch`` fresh ids, ``rate`` events a second in
    all (what two cores can take in and process together), until :meth:`stop`; a batch in
    hand is delivered before a thread stops, so at the end every id sent is acknowledged (or
    named in ``problems``)."""

    def __init__(
        self,
        server: Server,
        model: str,
        *,
        tag: str,
        clients: int = 2,
        batch: int = 2000,
        rate: float = 10_000,
    ) -> None:
        self.server, self.model, self.tag = server, model, tag
        self.clients, self.batch = clients, batch
        self.interval = batch * clients / rate  # seconds between two batches of one client
        self.acknowledged: set[str] = set()
        self.statuses: Counter[int] = Counter()  # every HTTP status answered
        self.connection_errors = 0  # requests that got no answer (server down, reset)
        self.duplicates = 0  # ids a 2xx said were stored already: retries of committed batches
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Load:
        for n in range(self.clients):
            th = threading.Thread(target=self._client, args=(n,), name=f"load-{n}", daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=DELIVERY_TIMEOUT + 30)
        alive = [th.name for th in self._threads if th.is_alive()]
        assert not alive, f"clients still delivering: {alive}"

    @property
    def acknowledged_count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def wait(self, more: int, timeout: float = 120.0) -> None:
        """Until ``more`` events more than now are acknowledged."""
        target = self.acknowledged_count + more
        deadline = time.monotonic() + timeout
        while self.acknowledged_count < target:
            assert not self.problems, self.problems[:5]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.acknowledged_count} of {target} events acknowledged after "
                    f"{timeout:.0f} s; statuses {dict(self.statuses)}"
                )
            time.sleep(0.02)

    def statuses_now(self) -> Counter[int]:
        with self._lock:
            return self.statuses.copy()

    def unexpected_statuses(self) -> dict[int, int]:
        return {s: n for s, n in self.statuses.items() if s // 100 != 2 and s != 503}

    def summary(self) -> str:
        return (
            f"{len(self.acknowledged)} acknowledged, statuses {dict(sorted(self.statuses.items()))},"
            f" {self.connection_errors} connection errors, {self.duplicates} duplicates"
        )

    def _client(self, n: int) -> None:
        with httpx.Client(timeout=30) as http:
            k, next_at = 0, time.monotonic()
            while not self._stop.is_set():
                ids = [f"{self.tag}-{n}-{k}-{i}" for i in range(self.batch)]
                self._deliver(http, ids, arrow_body(ids, seed=k))
                k += 1
                next_at = max(next_at + self.interval, time.monotonic() - self.interval)
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _deliver(self, http: httpx.Client, ids: list[str], body: bytes) -> None:
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while time.monotonic() < deadline:
            url = f"{self.server.url}/v1/models/{self.model}/predictions"  # a restart moves it
            try:
                r = http.post(url, content=body, headers=ARROW)
            except httpx.TransportError:
                with self._lock:
                    self.connection_errors += 1
                time.sleep(0.05)
                continue
            with self._lock:
                self.statuses[r.status_code] += 1
            if r.status_code // 100 == 2:
                result = r.json()
                if result["accepted"] + result["duplicates"] != len(ids):
                    self.problems.append(f"{ids[0]}..: {r.status_code} {r.text[:300]}")
                with self._lock:
                    self.acknowledged.update(ids)
                    self.duplicates += result["duplicates"]
                return
            if r.status_code // 100 != 5:
                self.problems.append(f"{ids[0]}..: {r.status_code} {r.text[:300]}")
                return
            retry_after = float(r.headers.get("retry-after", "0.2"))
            time.sleep(min(retry_after, 1.0))  # a real client waits Retry-After; tests hurry
        self.problems.append(f"{ids[0]}..: not acknowledged in {DELIVERY_TIMEOUT:.0f} s")


# ---------------------------------------------------------------------------------- processes
def lake_files(server: Server) -> int:
    return sum(1 for _ in server.lake_dir.rglob("*.parquet"))


def wait_processing(server: Server, batches: int = 1, timeout: float = 60.0) -> None:
    """Until the processor has written ``batches`` more batches to the lake: it is at work, most
    likely profiling a batch whose lake file is written and whose profiles are not committed
    yet, so a kill now lands where a batch is half done."""
    target = lake_files(server) + batches
    deadline = time.monotonic() + timeout
    while lake_files(server) < target:
        if time.monotonic() > deadline:
            raise AssertionError(f"the processor did not get to work:\n{server.log_tail()}")
        time.sleep(0.002)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:  # exited meanwhile
            continue
        ppid = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
        if int(ppid) == pid:
            found.append(int(entry.name))
    return found


def processor_pid(server: Server) -> int | None:
    """The pid of the server's processor process (multiprocessing's spawned child), if any."""
    assert server.process is not None
    for pid in _children(server.process.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            return pid
    return None


def kill_processor(server: Server, timeout: float = 30.0) -> int:
    """SIGKILL the processor process alone; return the pid of the one the server starts in its
    place (it notices within a second)."""
    old = processor_pid(server)
    assert old is not None, f"no processor process under the server:\n{server.log_tail()}"
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = processor_pid(server)
        if new is not None and new != old:
            return new
        time.sleep(0.05)
    raise AssertionError(f"the server did not restart its processor:\n{server.log_tail()}")
