"""Replicas benchmark: ingest throughput of 1, 2 and 3 ``watchkeeper serve`` replicas on one
PostgreSQL and one lake, and what the leases cost.

    python benchmarks/replicas.py --update-docs
    python benchmarks/replicas.py --events 1000000 --replicas 1 3     # the issue's million

For each replica count a fresh database (``--admin`` names the server, ``postgres`` database)
and a fresh lake are made; the replicas start (each its own data directory, one shared
``lake_path``), a 25-feature model is registered, and ``--clients`` client threads post the
same total load (``--events`` in Arrow IPC batches of ``--batch``) round robin over the
replicas, batch ``n`` to replica ``n % replicas``. Reported per count: acknowledged events/s
(first post to last 2xx), processed events/s (first post until every replica's processor has
drained the log: indexed, written to the lake, profiled), the CPU seconds of the replicas
(servers and their processors), of PostgreSQL, and of all of them per 1,000 events, and how
the batches were split among the replicas' processors (``watchkeeper_processor_batches`` of
each replica's ``/metrics``; a logged batch may hold several requests' batches: concurrent
requests share one commit).

The leasing cost is the processed rate with 3 replicas over that with 1 on the same load, and
the CPU per event of each: the leases are one ``pg_try_advisory_lock`` and one
``pg_advisory_unlock`` per batch on a connection of the processor's own.
Results go to ``benchmarks/results/replicas.json`` and ``.md``; ``--update-docs`` writes the
table between ``<!-- replicas:start/end -->`` of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_section import replace_section
from ingest import body, free_port, make_table
from serving import cpu_seconds

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
ARROW = "application/vnd.apache.arrow.stream"


def postgres_cpu() -> float:
    """CPU seconds of every ``postgres`` process of this machine (the server is local)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(postgres)" in text:
            fields = text.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def fresh_database(admin: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def start(database: str, data_dir: Path, lake: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    exe = shutil.which("watchkeeper")
    cmd = [exe] if exe else [sys.executable, "-m", "watchkeeper.cli"]
    cmd += ["serve", "--port", str(port), "--data-dir", str(data_dir), "--database", database]
    env = {
        **os.environ,
        "WATCHKEEPER_MAX_PENDING_EVENTS": str(10**9),
        "WATCHKEEPER_LOG_LEVEL": "warning",
        "WATCHKEEPER_LAKE_PATH": str(lake),
    }
    return subprocess.Popen(cmd, env=env), port


def wait_ready(procs: list[tuple[subprocess.Popen[bytes], int]]) -> None:
    deadline = time.monotonic() + 120
    for proc, port in procs:
        while True:
            try:
                if get(port, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the replica on port {port} did not become ready")
            time.sleep(0.1)


def register(port: int) -> None:
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


def pending(port: int) -> int:
    return int(get(port, "/v1/models/bench")[1]["events_pending"])


def run(args: argparse.Namespace, replicas: int, progress: Progress) -> dict[str, Any]:
    name = f"wk_bench_replicas_{replicas}"
    database = fresh_database(args.admin, name)
    root = Path(tempfile.mkdtemp(prefix="wk-replicas-"))
    procs = [start(database, root / f"data-{i}", root / "lake") for i in range(replicas)]
    try:
        wait_ready(procs)
        register(procs[0][1])
        batches = args.events // args.batch
        payloads = [
            body(make_table(args.batch, n, n * args.batch), "Arrow IPC") for n in range(batches)
        ]
        ports = [port for _, port in procs]
        wait_processors(ports)
        # the replicas at rest: what each costs with no events (polling, heartbeats, the
        # evaluator's passes), the fixed part of the CPU below
        idle0 = sum(cpu_seconds(p.pid) for p, _ in procs), time.perf_counter()
        time.sleep(args.idle_seconds)
        idle1 = sum(cpu_seconds(p.pid) for p, _ in procs), time.perf_counter()
        idle_ms_per_s = (idle1[0] - idle0[0]) / (idle1[1] - idle0[1]) * 1e3
        task = progress.add_task(f"{replicas} replica(s): acknowledged", total=batches)
        next_batch, lock = [0], threading.Lock()
        errors: list[str] = []

        def client() -> None:
            conns = {p: http.client.HTTPConnection("127.0.0.1", p, timeout=300) for p in ports}
            try:
                while True:
                    with lock:
                        n = next_batch[0]
                        next_batch[0] += 1
                    if n >= batches:
                        return
                    port = ports[n % len(ports)]
                    for attempt in range(3):  # a keep-alive connection the server closed
                        try:
                            conns[port].request(
                                "POST",
                                "/v1/models/bench/predictions",
                                payloads[n],
                                headers={"content-type": ARROW},
                            )
                            resp = conns[port].getresponse()
                            answer = resp.read()
                            break
                        except (ConnectionError, http.client.HTTPException):
                            conns[port].close()  # reconnects on the next request; the same
                            if attempt == 2:  # ids again: a retry stores nothing twice
                                raise
                    if resp.status != 200 or orjson.loads(answer)["accepted"] != args.batch:
                        errors.append(f"{resp.status}: {answer[:200]!r}")
                        return
                    progress.advance(task)
            finally:
                for conn in conns.values():
                    conn.close()

        cpu0 = sum(cpu_seconds(p.pid) for p, _ in procs), postgres_cpu()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        acked = time.perf_counter()
        if errors:
            raise SystemExit(f"{replicas} replicas: {errors[:3]}")
        deadline = time.monotonic() + args.drain_timeout
        while pending(ports[0]):
            if time.monotonic() > deadline:
                raise SystemExit(f"{replicas} replicas: not drained in {args.drain_timeout} s")
            time.sleep(0.05)
        drained = time.perf_counter()
        cpu1 = sum(cpu_seconds(p.pid) for p, _ in procs), postgres_cpu()
        time.sleep(1.0)  # a processor's counters are updated at the end of its pass
        split = [processor_batches(port) for port in ports]
        total = batches * args.batch
        replicas_cpu, pg_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        return {
            "replicas": replicas,
            "events": total,
            "acknowledged_per_s": total / (acked - began),
            "processed_per_s": total / (drained - began),
            "replicas_cpu_s": replicas_cpu,
            "postgres_cpu_s": pg_cpu,
            "cpu_ms_per_1k": (replicas_cpu + pg_cpu) / total * 1e6,
            "idle_ms_per_s": idle_ms_per_s,
            "seconds": drained - began,
            "split": split,
        }
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            proc.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)
        drop_database(args.admin, name)


def metric(port: int, name: str) -> int:
    """A family of this replica's ``/metrics``, its samples summed."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return int(sum(s.value for s in family.samples))
    return 0


def processor_batches(port: int) -> int:
    """The batches this replica's processor applied since it started (``/metrics``)."""
    return metric(port, "watchkeeper_processor_batches")


def wait_processors(ports: list[int]) -> None:
    """Until every replica's processor process has started (``watchkeeper_processor_ready``):
    on a busy machine a start-up takes seconds of CPU, which is no cost of the events."""
    deadline = time.monotonic() + 120
    while not all(metric(port, "watchkeeper_processor_ready") for port in ports):
        if time.monotonic() > deadline:
            raise SystemExit("the replicas' processors did not start")
        time.sleep(0.2)


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Replicas on one PostgreSQL",
        "",
        f"{meta['date']}, commit {meta['commit']}, {meta['cpus']} cores shared by the clients, "
        f"the replicas (each a server and its processor) and PostgreSQL; {meta['events']:,} "
        f"events in Arrow batches of {meta['batch']:,} from {meta['clients']} clients, round "
        f"robin; load average before {meta['load_before'][0]:.2f} / after "
        f"{meta['load_after'][0]:.2f} (1 min).",
        "",
        "| replicas | acknowledged events/s | processed events/s | replicas CPU s | "
        "PostgreSQL CPU s | CPU ms per 1,000 events | processed vs 1 replica | logged batches "
        "per processor | replicas at rest, CPU ms/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    one = next((r for r in results if r["replicas"] == 1), results[0])
    for r in results:
        lines.append(
            f"| {r['replicas']} | {r['acknowledged_per_s']:,.0f} | {r['processed_per_s']:,.0f} "
            f"| {r['replicas_cpu_s']:.1f} | {r['postgres_cpu_s']:.1f} | "
            f"{r['cpu_ms_per_1k']:.1f} | {r['processed_per_s'] / one['processed_per_s']:.2f} "
            f"| {' / '.join(str(b) for b in r['split'])} | {r['idle_ms_per_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1_000)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--replicas", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--admin", default="postgresql://postgres@127.0.0.1/postgres")
    ap.add_argument("--drain-timeout", type=float, default=600.0)
    ap.add_argument("--idle-seconds", type=float, default=5.0)
    ap.add_argument("--update-docs", action="store_true")
    args = ap.parse_args()
    console = Console()
    load_before = os.getloadavg()
    results = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        for n in args.replicas:
            r = run(args, n, progress)
            results.append(r)
            progress.console.print(
                f"{n} replica(s): {r['acknowledged_per_s']:,.0f} acknowledged/s, "
                f"{r['processed_per_s']:,.0f} processed/s, {r['cpu_ms_per_1k']:.1f} CPU ms "
                "per 1,000 events"
            )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "events": args.events,
        "batch": args.batch,
        "clients": args.clients,
    }
    text = markdown(results, meta)
    console.print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "replicas.json").write_text(json.dumps({"meta": meta, "runs": results}, indent=2))
    (RESULTS / "replicas.md").write_text(text)
    if args.update_docs:
        replace_section(DOCS, "<!-- replicas:start -->", "<!-- replicas:end -->", text)


if __name__ == "__main__":
    main()
