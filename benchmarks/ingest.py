"""Ingest benchmark: throughput and acknowledgement latency of ``POST .../predictions`` for
row JSON, columnar JSON and Arrow IPC bodies (25 features), next to the floor: parsing the
same payloads with the server's parser (orjson; Arrow's reader for Arrow) and writing them to
Parquet, in one process, no server.

    python benchmarks/ingest.py --update-docs                    # SQLite state store
    python benchmarks/ingest.py --database postgresql://postgres@127.0.0.1/wk_bench --update-docs

The server runs in its own process (``watchkeeper serve``, its processor a child process) on
loopback. Every cell — a format, a batch size (100 / 1,000 / 5,000 events), 1 or 4 client
threads on keep-alive connections posting back to back — runs on its own: after its last
acknowledgement the benchmark waits (bounded, ``--drain-timeout``; it fails loudly past it)
until the processor has indexed, written to the lake and profiled every event, so no backlog
is carried into the next cell. Reported per cell: acknowledged (durable) events/s, ack p50 and
p99, the processed rate (events over the time from the first post until drained), the floor
and the ratio to it, and the CPU seconds of the server and of its processor (Linux /proc).
Results go to ``benchmarks/results/ingest-<store>.json`` and ``.md``; ``--update-docs`` writes
the tables between the markers ``<!-- ingest-<store>:start/end -->`` of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import ipc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_section import replace_section
from serving import cpu_seconds

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
N_NUM, N_CAT = 20, 5
KINDS = ("row JSON", "columnar JSON", "Arrow IPC")
BATCHES = (100, 1_000, 5_000)
CLIENTS = (1, 4)
GOAL_ROW = 50_000  # row JSON, batches of 1,000 from 4 clients
GOAL_COLUMNAR = 500_000  # Arrow / columnar, same load: or within 2x of the floor
GOAL_RATIO = 2.0
DRAIN_TIMEOUT = 300.0  # seconds the processor may take to drain a cell's events


def make_table(rows: int, seed: int, offset: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {"prediction_id": [f"p{offset + i}" for i in range(rows)]}
    for i in range(N_NUM):
        cols[f"x{i}"] = rng.normal(i, 1, rows)
    for i in range(N_CAT):
        cols[f"c{i}"] = rng.choice(["a", "b", "c", "d"], rows)
    cols["prediction"] = rng.integers(0, 2, rows)
    cols["latency_ms"] = rng.lognormal(2.5, 0.3, rows)
    return pa.table(cols)


def body(table: pa.Table, kind: str) -> bytes:
    feats = [
        c for c in table.column_names if c not in ("prediction_id", "prediction", "latency_ms")
    ]
    if kind == "row JSON":
        rows = table.to_pylist()
        return orjson.dumps(
            {
                "events": [
                    {
                        "prediction_id": r["prediction_id"],
                        "features": {k: r[k] for k in feats},
                        "prediction": r["prediction"],
                        "latency_ms": r["latency_ms"],
                    }
                    for r in rows
                ]
            }
        )
    if kind == "columnar JSON":
        return orjson.dumps(
            {
                "prediction_id": table["prediction_id"].to_pylist(),
                "features": {k: table[k].to_pylist() for k in feats},
                "prediction": table["prediction"].to_pylist(),
                "latency_ms": table["latency_ms"].to_pylist(),
            }
        )
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


CTYPE = {
    "row JSON": "application/json",
    "columnar JSON": "application/json",
    "Arrow IPC": "application/vnd.apache.arrow.stream",
}


def floor_seconds(data: bytes, kind: str) -> float:
    """Parse the payload into Arrow with the server's parser and write it to Parquet: the
    least any server must do."""
    start = time.perf_counter()
    if kind == "row JSON":
        events = orjson.loads(data)["events"]
        flat = [
            {
                "prediction_id": e["prediction_id"],
                **e["features"],
                "prediction": e["prediction"],
                "latency_ms": e["latency_ms"],
            }
            for e in events
        ]
        table = pa.Table.from_pylist(flat)
    elif kind == "columnar JSON":
        parsed = orjson.loads(data)
        table = pa.table(
            {
                "prediction_id": parsed["prediction_id"],
                **parsed["features"],
                "prediction": parsed["prediction"],
                "latency_ms": parsed["latency_ms"],
            }
        )
    else:
        table = ipc.open_stream(pa.BufferReader(data)).read_all()
    pq.write_table(table, io.BytesIO())
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def own_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int

    def get(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=60) as resp:
            return json.loads(resp.read())

    def cpu(self) -> tuple[float, float]:
        """CPU seconds of the server process and of its children (the processor)."""
        own = own_cpu_seconds(self.proc.pid)
        return own, cpu_seconds(self.proc.pid) - own


def post_all(port: int, payloads: list[bytes], ctype: str, acks: list[float]) -> int:
    """One client: post the payloads back to back on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    accepted = 0
    try:
        for data in payloads:
            t0 = time.perf_counter()
            conn.request(
                "POST", "/v1/models/bench/predictions", data, headers={"content-type": ctype}
            )
            resp = conn.getresponse()
            answer = resp.read()
            acks.append(time.perf_counter() - t0)
            if resp.status != 200:
                raise SystemExit(f"POST answered {resp.status}: {answer[:300]!r}")
            accepted += int(orjson.loads(answer)["accepted"])
    finally:
        conn.close()
    return accepted


def drain(server: Server, timeout: float) -> float:
    """Wait until the processor has processed every logged event; the time it happened."""
    deadline = time.monotonic() + timeout
    while True:
        if server.get("/v1/models/bench")["events_pending"] == 0:
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise SystemExit(f"the processor did not drain the log within {timeout:g} s")
        time.sleep(0.05)


def run_cell(
    server: Server, kind: str, batch: int, clients: int, events: int, offset: int, timeout: float
) -> dict[str, Any]:
    per_client = max(4, -(-events // (batch * clients)))
    work: list[list[bytes]] = []
    floors = 0.0
    for c in range(clients):
        payloads = []
        for r in range(per_client):
            at = offset + (c * per_client + r) * batch
            data = body(make_table(batch, at, at), kind)
            floors += floor_seconds(data, kind)
            payloads.append(data)
        work.append(payloads)
    total = batch * clients * per_client
    acks: list[list[float]] = [[] for _ in range(clients)]
    accepted = [0] * clients
    cpu0 = server.cpu()

    def client(i: int) -> None:
        accepted[i] = post_all(server.port, work[i], CTYPE[kind], acks[i])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    cpu1 = server.cpu()
    drained = drain(server, timeout)
    cpu2 = server.cpu()
    if sum(accepted) != total:
        raise SystemExit(f"{kind} {batch}x{clients}: {sum(accepted)} of {total} accepted")
    every = np.concatenate([np.asarray(a) for a in acks]) * 1000
    rate = total / wall
    floor = total / floors
    return {
        "format": kind,
        "batch": batch,
        "clients": clients,
        "events": total,
        "events_per_s": rate,
        "ack_p50_ms": float(np.percentile(every, 50)),
        "ack_p99_ms": float(np.percentile(every, 99)),
        "processed_per_s": total / (drained - start),
        "floor_events_per_s": floor,
        "times_floor": floor / rate,
        "wall_s": wall,
        "drain_s": drained - start,
        "server_cpu_s": cpu1[0] - cpu0[0],
        "processor_cpu_s": cpu2[1] - cpu0[1],
        "body_bytes": len(work[0][0]),
    }


def start_server(database: str | None, data_dir: Path) -> Server:
    port = free_port()
    exe = shutil.which("watchkeeper")
    cmd = [exe] if exe else [sys.executable, "-m", "watchkeeper.cli"]
    cmd += ["serve", "--port", str(port), "--data-dir", str(data_dir)]
    if database:
        cmd += ["--database", database]
    env = {
        **os.environ,
        "WATCHKEEPER_MAX_PENDING_EVENTS": str(10**9),
        "WATCHKEEPER_LOG_LEVEL": "warning",
    }
    server = Server(subprocess.Popen(cmd, env=env), port)
    for _ in range(300):
        try:
            server.get("/healthz")
            break
        except OSError:
            if server.proc.poll() is not None:
                raise SystemExit("the server ended at start-up") from None
            time.sleep(0.1)
    ref = make_table(20_000, 0, 0).drop_columns(["prediction_id", "latency_ms"])
    buf = io.BytesIO()
    pq.write_table(ref, buf)
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/models/bench/versions/v1?prediction=prediction",
        data=buf.getvalue(),
        method="PUT",
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    urllib.request.urlopen(req, timeout=120).read()
    return server


def goals(results: list[dict[str, Any]]) -> list[str]:
    cell = {(r["format"], r["batch"], r["clients"]): r for r in results}
    lines = ["| goal (batches of 1,000, 4 clients) | measured | holds |", "|---|---|---|"]
    row = cell.get(("row JSON", 1_000, 4))
    if row:
        ok = row["events_per_s"] >= GOAL_ROW
        lines.append(
            f"| row JSON ≥ {GOAL_ROW:,} events/s | {row['events_per_s']:,.0f} "
            f"({row['events_per_s'] / GOAL_ROW:.2f} of the goal) | {'yes' if ok else 'no'} |"
        )
    for kind in ("columnar JSON", "Arrow IPC"):
        r = cell.get((kind, 1_000, 4))
        if r:
            ok = r["events_per_s"] >= GOAL_COLUMNAR or r["times_floor"] <= GOAL_RATIO
            lines.append(
                f"| {kind} ≥ {GOAL_COLUMNAR:,} events/s or within {GOAL_RATIO:g}× of the floor "
                f"| {r['events_per_s']:,.0f}, {r['times_floor']:.1f}× the floor "
                f"| {'yes' if ok else 'no'} |"
            )
    return lines


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    store = meta["store"]
    lines = [
        f"## Ingest results ({store})",
        "",
        f"{meta['date']}, commit {meta['commit']}, {meta['cpus']} cores shared by the client, "
        f"the server, its processor{' and PostgreSQL' if store == 'PostgreSQL' else ''}; "
        f"load average before {meta['load_before'][0]:.2f} / after {meta['load_after'][0]:.2f} "
        f"(1 min); {meta['nice']}.",
        "",
        "| format | batch | clients | events/s | ack p50 ms | ack p99 ms | processed/s "
        "| floor events/s | × floor | wall s | server CPU s | processor CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['format']} | {r['batch']:,} | {r['clients']} | {r['events_per_s']:,.0f} | "
        f"{r['ack_p50_ms']:.1f} | {r['ack_p99_ms']:.1f} | {r['processed_per_s']:,.0f} | "
        f"{r['floor_events_per_s']:,.0f} | {r['times_floor']:.1f} | {r['wall_s']:.2f} | "
        f"{r['server_cpu_s']:.2f} | {r['processor_cpu_s']:.2f} |"
        for r in results
    ]
    lines += ["", f"### Goals ({store})", "", *goals(results)]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=40_000, help="events per cell (about)")
    ap.add_argument("--batch", type=int, nargs="*", default=list(BATCHES))
    ap.add_argument("--clients", type=int, nargs="*", default=list(CLIENTS))
    ap.add_argument("--formats", nargs="*", default=list(KINDS), choices=KINDS)
    ap.add_argument("--database", default=None, help="postgresql://... (default: SQLite)")
    ap.add_argument("--drain-timeout", type=float, default=DRAIN_TIMEOUT, help="seconds")
    ap.add_argument("--update-docs", action="store_true")
    args = ap.parse_args()
    console = Console()
    store = "PostgreSQL" if args.database else "SQLite"
    data_dir = Path(tempfile.mkdtemp(prefix="wk-ingest-"))
    cells = [(k, b, c) for k in args.formats for b in args.batch for c in args.clients]
    load_before = os.getloadavg()
    server = start_server(args.database, data_dir)
    results = []
    try:
        offset = 1_000_000
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("ingest cells", total=len(cells))
            for kind, batch, clients in cells:
                progress.update(task, description=f"{store}: {kind}, {batch:,} × {clients}")
                r = run_cell(server, kind, batch, clients, args.events, offset, args.drain_timeout)
                offset += r["events"] + batch * clients * 8
                results.append(r)
                progress.console.print(
                    f"{kind:>13} {batch:>5,} × {clients}: {r['events_per_s']:>9,.0f} events/s, "
                    f"ack p50 {r['ack_p50_ms']:.1f} ms, p99 {r['ack_p99_ms']:.1f} ms, "
                    f"processed {r['processed_per_s']:,.0f}/s, {r['times_floor']:.1f}× floor"
                )
                progress.advance(task)
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    meta = {
        "store": store,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "nice": f"niceness {os.nice(0)}",
        "events_per_cell": args.events,
    }
    text = markdown(results, meta)
    console.print(text)
    RESULTS.mkdir(exist_ok=True)
    name = f"ingest-{store.lower()}"
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "cells": results}, indent=2))
    (RESULTS / f"{name}.md").write_text(text)
    if args.update_docs:
        replace_section(DOCS, f"<!-- {name}:start -->", f"<!-- {name}:end -->", text)


if __name__ == "__main__":
    main()
