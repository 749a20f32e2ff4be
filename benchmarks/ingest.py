"""Ingest benchmark: throughput and acknowledgement latency of ``POST .../predictions`` for
row JSON, columnar JSON and Arrow IPC bodies (25 features), next to the floor: only parsing
the same payloads and writing them to Parquet, in one process, no server.

    python benchmarks/ingest.py                   # SQLite state store
    python benchmarks/ingest.py --database postgresql://postgres@127.0.0.1/wk_bench

The server runs in its own process (``watchkeeper serve``) on loopback; one client thread
posts batches back to back, so the figures are per server process, acknowledged (durable)
events. Results go to ``benchmarks/results/ingest.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import ipc
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
N_NUM, N_CAT = 20, 5


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


def bodies(table: pa.Table) -> dict[str, tuple[bytes, str]]:
    feats = [
        c for c in table.column_names if c not in ("prediction_id", "prediction", "latency_ms")
    ]
    rows = table.to_pylist()
    row_json = {
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
    columnar = {
        "prediction_id": table["prediction_id"].to_pylist(),
        "features": {k: table[k].to_pylist() for k in feats},
        "prediction": table["prediction"].to_pylist(),
        "latency_ms": table["latency_ms"].to_pylist(),
    }
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return {
        "row JSON": (json.dumps(row_json).encode(), "application/json"),
        "columnar JSON": (json.dumps(columnar).encode(), "application/json"),
        "Arrow IPC": (sink.getvalue().to_pybytes(), "application/vnd.apache.arrow.stream"),
    }


def floor_seconds(body: bytes, kind: str) -> float:
    """Parse the payload into Arrow and write it to Parquet: the least any server must do."""
    start = time.perf_counter()
    if kind == "row JSON":
        events = json.loads(body)["events"]
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
        data = json.loads(body)
        table = pa.table(
            {
                "prediction_id": data["prediction_id"],
                **data["features"],
                "prediction": data["prediction"],
                "latency_ms": data["latency_ms"],
            }
        )
    else:
        table = ipc.open_stream(pa.BufferReader(body)).read_all()
    pq.write_table(table, io.BytesIO())
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: bytes, ctype: str) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers={"content-type": ctype})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return int(json.loads(resp.read())["accepted"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=5000, help="events per request")
    ap.add_argument("--batches", type=int, default=20, help="requests per format")
    ap.add_argument("--database", default=None, help="postgresql://... (default: SQLite)")
    args = ap.parse_args()
    console = Console()
    data_dir = Path(tempfile.mkdtemp(prefix="wk-ingest-"))
    port = free_port()
    exe = shutil.which("watchkeeper")
    cmd = [exe] if exe else [sys.executable, "-m", "watchkeeper.cli"]
    cmd += ["serve", "--port", str(port), "--data-dir", str(data_dir)]
    if args.database:
        cmd += ["--database", args.database]
    env = {
        **os.environ,
        "WATCHKEEPER_MAX_PENDING_EVENTS": str(10**9),
        "WATCHKEEPER_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(cmd, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        ref = make_table(20_000, 0, 0).drop_columns(["prediction_id", "latency_ms"])
        buf = io.BytesIO()
        pq.write_table(ref, buf)
        req = urllib.request.Request(
            f"{base}/v1/models/bench/versions/v1?prediction=prediction",
            data=buf.getvalue(),
            method="PUT",
            headers={"content-type": "application/vnd.apache.parquet"},
        )
        urllib.request.urlopen(req, timeout=120).read()
        results = []
        offset = 0
        kinds = ("row JSON", "columnar JSON", "Arrow IPC")
        every: dict[str, list[tuple[bytes, str]]] = {kind: [] for kind in kinds}
        with console.status("making the payloads"):
            for kind in kinds:  # all made before the first request: the posting is back to back
                for b in range(args.batches):
                    table = make_table(args.batch, b + 1, offset)
                    offset += args.batch
                    every[kind].append(bodies(table)[kind])
        floors_of = {kind: [floor_seconds(body, kind) for body, _ in every[kind]] for kind in kinds}
        first_post = time.perf_counter()
        for kind in kinds:
            payloads, floors = every[kind], floors_of[kind]
            acks, accepted = [], 0
            start = time.perf_counter()
            with console.status(f"posting {kind}"):
                for body, ctype in payloads:
                    t0 = time.perf_counter()
                    accepted += post(f"{base}/v1/models/bench/predictions", body, ctype)
                    acks.append(time.perf_counter() - t0)
            wall = time.perf_counter() - start
            events = args.batch * args.batches
            results.append(
                {
                    "format": kind,
                    "events": events,
                    "accepted": accepted,
                    "events_per_s": events / wall,
                    "ack_p50_ms": float(np.percentile(acks, 50) * 1000),
                    "ack_p99_ms": float(np.percentile(acks, 99) * 1000),
                    "floor_events_per_s": events / sum(floors),
                    "ratio_to_floor": (events / sum(floors)) / (events / wall),
                    "body_mb": len(payloads[0][0]) / 1e6,
                }
            )
        # The processor (index, lake, profiles) runs in the same process and lags the
        # acknowledgements: how long until everything acknowledged is processed?
        with console.status("waiting for the processor to drain the log"):
            while True:
                with urllib.request.urlopen(f"{base}/v1/models/bench", timeout=60) as resp:
                    status = json.loads(resp.read())
                if status["events_pending"] == 0:
                    break
                time.sleep(0.2)
        drained = time.perf_counter() - first_post
        total = sum(r["events"] for r in results)
        sustained = {"events": total, "seconds": drained, "events_per_s": total / drained}
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)
    table = Table(
        "format",
        "events/s",
        "ack p50 ms",
        "ack p99 ms",
        "floor events/s",
        "× floor",
        title=f"ingest, {args.batch} events × 25 features per request, 2 cores",
    )
    for r in results:
        table.add_row(
            r["format"],
            f"{r['events_per_s']:,.0f}",
            f"{r['ack_p50_ms']:.1f}",
            f"{r['ack_p99_ms']:.1f}",
            f"{r['floor_events_per_s']:,.0f}",
            f"{r['ratio_to_floor']:.1f}",
        )
    console.print(table)
    line = (
        f"processed (indexed, in the lake and profiled): {sustained['events']:,} events "
        f"{sustained['seconds']:.1f} s after the first request = "
        f"{sustained['events_per_s']:,.0f} events/s sustained"
    )
    console.print(line)
    RESULTS.mkdir(exist_ok=True)
    store = "PostgreSQL" if args.database else "SQLite"
    (RESULTS / f"ingest-{store.lower()}.json").write_text(
        json.dumps({"requests": results, "sustained": sustained, "load": os.getloadavg()}, indent=2)
    )
    lines = [
        f"| format ({store}) | events/s | ack p50 ms | ack p99 ms | floor events/s | × floor |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['format']} | {r['events_per_s']:,.0f} | {r['ack_p50_ms']:.1f} | "
        f"{r['ack_p99_ms']:.1f} | {r['floor_events_per_s']:,.0f} | {r['ratio_to_floor']:.1f} |"
        for r in results
    ]
    lines += ["", line]
    (RESULTS / f"ingest-{store.lower()}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
