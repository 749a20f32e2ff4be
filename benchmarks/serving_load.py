"""The load generator of the serving benchmark, run as its own process: a closed loop of N
connections (one thread each, HTTP/1.1 keep-alive), each sending the same body back to back
and timing every answer. Warm-up requests are sent first and not timed. Prints one JSON line:
the latencies in ms, the wall and CPU seconds of the timed part, and the failures.

    python benchmarks/serving_load.py --url http://127.0.0.1:8710/predict/onnx \\
        --body body.json --concurrency 8 --requests 3000 --warmup 200
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def _worker(
    host: str,
    port: int,
    path: str,
    body: bytes,
    todo: list[int],
    lock: threading.Lock,
    start: threading.Barrier,
    out: dict[str, Any],
) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=60)
    headers = {"content-type": "application/json"}
    latencies: list[float] = []
    start.wait()
    while True:
        with lock:
            if todo[0] <= 0:
                break
            todo[0] -= 1
        t0 = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        latencies.append((time.perf_counter() - t0) * 1000)
        if resp.status != 200:
            with lock:
                out["failures"] += 1
                out["failure"] = f"{resp.status}: {data[:300].decode(errors='replace')}"
    conn.close()
    with lock:
        out["latencies_ms"].extend(latencies)


def run(url: str, body: bytes, concurrency: int, requests: int) -> dict[str, Any]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    out: dict[str, Any] = {"latencies_ms": [], "failures": 0, "failure": None}
    todo, lock = [requests], threading.Lock()
    start = threading.Barrier(concurrency + 1)
    threads = [
        threading.Thread(
            target=_worker,
            args=(parts.hostname, parts.port, parts.path, body, todo, lock, start, out),
        )
        for _ in range(concurrency)
    ]
    for t in threads:
        t.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    out["wall_seconds"] = time.perf_counter() - wall0
    out["client_cpu_seconds"] = time.process_time() - cpu0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--body", type=Path, required=True, help="a file with the JSON body")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--warmup", type=int, default=200)
    args = ap.parse_args()
    body = args.body.read_bytes()
    warm = run(args.url, body, args.concurrency, args.warmup)
    if warm["failures"]:
        print(json.dumps({"error": f"warm-up failed: {warm['failure']}"}))
        return
    timed = run(args.url, body, args.concurrency, args.requests)
    timed["requests"] = args.requests
    timed["concurrency"] = args.concurrency
    print(json.dumps(timed))


if __name__ == "__main__":
    main()
