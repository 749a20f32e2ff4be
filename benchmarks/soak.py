"""Soak: ``watchkeeper serve`` under a steady, realistic load for a quarter of an hour; does
anything grow that should not?

    python benchmarks/soak.py                  # 1 minute warm-up, then 15 minutes measured
    python benchmarks/soak.py --minutes 20 --docs

The server runs in its own process with the default settings and embedded store (SQLite).
Client threads, each on its own schedule: a batch of 500 prediction events every half second
(Arrow, columnar and row JSON in turn: 1,000 events/s), 250 labels for earlier predictions
every second, the model's status every second, a metric series and the model's dashboard page
and a feature page every 2 seconds, and a Prometheus scrape of ``/metrics`` every 15 seconds.
Every 2 seconds the RSS and open file descriptors of the server and of its processor process
are read from ``/proc``. Before the warm-up, 10,000 events dated in the window before the
current one are sent and evaluated, so the dashboard shows an evaluated window from the
start, as it does at the end (a window closing during the run replaces it): start and end
compare pages doing the same work, not an empty page with a full one.

Start (the first 2 measured minutes) is compared with end (the last 2): mean RSS, mean fds,
and p50 / p99 latency per route. It exits 1 when anything grew by 10 % or more, or when a
request failed. Results go to ``benchmarks/results/soak.json``, ``.md`` and ``.png`` (the plot
needs matplotlib); ``--docs`` writes the table into ``docs/benchmarks.md`` too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
from pyarrow import ipc
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from docs_section import replace_section
from ingest import bodies, free_port, make_table

RESULTS = Path(__file__).resolve().parent / "results"
DOCS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
DOCS_START, DOCS_END = "<!-- soak results:start -->", "<!-- soak results:end -->"
MODEL = "soak"
BATCH, LABELS = 500, 250
PREFILL = 20  # batches dated in the window before the current one, evaluated before the load
SAMPLE_EVERY = 2.0  # seconds between two /proc readings
EDGE = 120.0  # seconds: the start and end windows compared
LIMIT = 10.0  # % growth that fails the soak
FORMATS = ("Arrow IPC", "columnar JSON", "row JSON")


class Soak:
    """The load's threads, the samples and the request log of one run."""

    def __init__(self, base: str, server: subprocess.Popen[bytes], started: float) -> None:
        self.base, self.server, self.started = base, server, started
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.requests: list[tuple[float, str, float, int]] = []  # (t, route, seconds, status)
        self.samples: list[dict[str, Any]] = []
        self.sent: list[str] = []  # prediction ids acknowledged, in order
        self.labelled = 0
        self.errors: list[str] = []  # requests that got no HTTP answer

    def every(self, period: float, route: str, call: Callable[[httpx.Client, int], Any]) -> None:
        """Call ``call(client, n)`` every ``period`` seconds (at once when late), timing it."""
        with httpx.Client(base_url=self.base, timeout=60) as client:
            n, next_at = 0, time.monotonic()
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    status = call(client, n).status_code
                except httpx.HTTPError as exc:  # counted as a failed request
                    status = 0
                    self.errors.append(f"{route}: {type(exc).__name__}: {exc}")
                elapsed = time.perf_counter() - t0
                with self.lock:
                    self.requests.append((time.monotonic() - self.started, route, elapsed, status))
                n += 1
                next_at += period
                self.stop.wait(max(0.0, next_at - time.monotonic()))

    def ingest(self, client: httpx.Client, n: int) -> httpx.Response:
        table = make_table(BATCH, n, n * BATCH)
        body, ctype = bodies(table)[FORMATS[n % len(FORMATS)]]
        r = client.post(
            f"/v1/models/{MODEL}/predictions", content=body, headers={"content-type": ctype}
        )
        if r.status_code == 200:
            with self.lock:
                self.sent.extend(table["prediction_id"].to_pylist())
        return r

    def labels(self, client: httpx.Client, n: int) -> httpx.Response:
        with self.lock:  # every other id of a batch sent a few seconds ago
            ids = self.sent[self.labelled : self.labelled + 2 * LABELS : 2]
            if len(self.sent) - self.labelled > 6 * BATCH:
                self.labelled += 2 * LABELS
            else:
                ids = []
        actuals = [{"prediction_id": pid, "label": int(pid[1:]) % 2} for pid in ids]
        return client.post(f"/v1/models/{MODEL}/actuals", json={"actuals": actuals})

    def sample(self) -> None:
        server = self.server.pid
        while not self.stop.is_set():
            row: dict[str, Any] = {"t": time.monotonic() - self.started}
            for name, pid in (("server", server), ("processor", processor_pid(server))):
                rss, fds, cpu = read_proc(pid)
                row |= {f"{name}_rss_mb": rss, f"{name}_fds": fds, f"{name}_cpu_s": cpu}
                row[f"{name}_pid"] = pid
            self.samples.append(row)
            self.stop.wait(SAMPLE_EVERY)


def read_proc(pid: int | None) -> tuple[float | None, int | None, float | None]:
    """RSS in MB, open file descriptors and CPU seconds used (user + system) of ``pid``."""
    if pid is None:
        return None, None, None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # exited meanwhile
        return None, None, None
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return kb / 1024, fds, cpu


def processor_pid(server: int) -> int | None:
    """The server's processor: its child started by multiprocessing (``spawn_main``)."""
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or b"spawn_main" not in (entry / "cmdline").read_bytes():
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == server:
            return int(entry.name)
    return None


def routes(soak: Soak, model: str) -> dict[str, tuple[float, Callable[[httpx.Client, int], Any]]]:
    """route name → (period in seconds, the request)."""
    m = f"/v1/models/{model}"
    return {
        "POST predictions": (0.5, soak.ingest),
        "POST actuals": (1.0, soak.labels),
        "GET status": (1.0, lambda c, n: c.get(m)),
        "GET metric series": (
            2.0,
            lambda c, n: c.get(f"{m}/metrics", params={"metric": "latency_p95"}),
        ),
        "GET dashboard model": (2.0, lambda c, n: c.get(f"/ui/models/{model}")),
        "GET dashboard feature": (2.0, lambda c, n: c.get(f"/ui/models/{model}/features/x0")),
        "GET /metrics": (15.0, lambda c, n: c.get("/metrics")),
    }


def growth(start: float, end: float) -> float:
    return (end - start) / start * 100 if start else float("inf") if end else 0.0


def summarise(soak: Soak, warmup: float, measured: float) -> dict[str, Any]:
    """Start (first EDGE s measured) against end (last EDGE s): resources and latencies."""
    first = (warmup, warmup + EDGE)
    last = (warmup + measured - EDGE, warmup + measured)

    def inside(t: float, window: tuple[float, float]) -> bool:
        return window[0] <= t < window[1]

    rows: list[dict[str, Any]] = []
    for process in ("server", "processor"):
        for what, unit in (("rss_mb", "MB"), ("fds", "")):
            key = f"{process}_{what}"
            s, e = (
                float(np.mean([x[key] for x in soak.samples if inside(x["t"], w) and x[key]]))
                for w in (first, last)
            )
            label = f"{process} {'RSS' if what == 'rss_mb' else 'open fds'}"
            rows.append({"what": label, "unit": unit, "start": s, "end": e})
    for process in ("server", "processor"):  # CPU used for the same work: contention-proof
        s, e = (cpu_percent(soak.samples, f"{process}_cpu_s", w) for w in (first, last))
        rows.append({"what": f"{process} CPU", "unit": "%", "start": s, "end": e})
    for route in routes(soak, MODEL):
        for q in (50, 99):
            s, e = (
                float(
                    np.percentile(
                        [x[2] for x in soak.requests if x[1] == route and inside(x[0], w)], q
                    )
                    * 1000
                )
                for w in (first, last)
            )
            rows.append({"what": f"{route} p{q}", "unit": "ms", "start": s, "end": e})
    for row in rows:
        row["growth_pct"] = growth(row["start"], row["end"])
    failed = [x for x in soak.requests if not 200 <= x[3] < 300]
    pids = {x["processor_pid"] for x in soak.samples if x["processor_pid"]}
    return {
        "rows": rows,
        "requests": len(soak.requests),
        "failed_requests": [{"t": t, "route": r, "status": s} for t, r, _, s in failed[:50]],
        "failed_count": len(failed),
        "transport_errors": soak.errors[:50],
        "events_acknowledged": len(soak.sent),
        "per_minute": per_minute(soak, warmup),
        "processor_restarts": len(pids) - 1,
        "warmup_s": warmup,
        "measured_s": measured,
        "load": os.getloadavg(),
    }


def cpu_percent(samples: list[dict[str, Any]], key: str, window: tuple[float, float]) -> float:
    """CPU time used over the window's wall time, in % of one core."""
    inside = [x for x in samples if window[0] <= x["t"] < window[1] and x[key] is not None]
    return (inside[-1][key] - inside[0][key]) / (inside[-1]["t"] - inside[0]["t"]) * 100


def per_minute(soak: Soak, warmup: float) -> dict[str, list[list[float]]]:
    """route → [minute, requests, p50 ms, p99 ms] for each minute after the warm-up."""
    out: dict[str, list[list[float]]] = {}
    for route in routes(soak, MODEL):
        rows = [x for x in soak.requests if x[1] == route and x[0] >= warmup]
        minutes = sorted({int((x[0] - warmup) // 60) for x in rows})
        out[route] = []
        for m in minutes:
            ms = [x[2] * 1000 for x in rows if int((x[0] - warmup) // 60) == m]
            p50, p99 = np.percentile(ms, [50, 99])
            out[route].append([m, len(ms), round(float(p50), 1), round(float(p99), 1)])
    return out


def plot(soak: Soak, warmup: float, path: Path) -> str:
    """RSS, fds and per-minute p99 per route over time, as a PNG; what was done, in words."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install matplotlib)"
    fig, axes = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
    minutes = [(x["t"] - warmup) / 60 for x in soak.samples]
    for process in ("server", "processor"):
        axes[0].plot(minutes, [x[f"{process}_rss_mb"] for x in soak.samples], label=process)
        axes[1].plot(minutes, [x[f"{process}_fds"] for x in soak.samples], label=process)
    requests = np.array([(x[0] - warmup) / 60 for x in soak.requests])
    for route in routes(soak, MODEL):
        mask = np.array([x[1] == route for x in soak.requests])
        seconds = np.array([x[2] for x in soak.requests])[mask]
        at = np.floor(requests[mask])
        xs = [m for m in sorted(set(at)) if (at == m).sum() >= 4]  # no sparse last minute
        p99 = [np.percentile(seconds[at == m], 99) * 1000 for m in xs]
        axes[2].plot([m + 0.5 for m in xs], p99, label=route)
    for ax, title in zip(
        axes, ("RSS (MB)", "open file descriptors", "p99 latency per minute (ms)"), strict=True
    ):
        ax.set_ylabel(title)
        ax.axvspan(min(minutes), 0, color="0.9")  # the warm-up
        ax.legend(fontsize=7)
    axes[2].set_yscale("log")
    axes[2].set_xlabel("minutes (after the warm-up)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return f"plot: {path.name}"


def markdown(result: dict[str, Any], minutes: float) -> str:
    lines = [
        "# Soak",
        "",
        f"{minutes:g} measured minutes after a {result['warmup_s'] / 60:g}-minute warm-up; "
        f"{result['events_acknowledged']:,} events acknowledged, {result['requests']:,} "
        f"requests, {result['failed_count']} failed; processor restarts: "
        f"{result['processor_restarts']}; 1-minute load at the end "
        f"{result['load'][0]:.1f}.",
        "",
        "| | start (first 2 min) | end (last 2 min) | growth |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        unit = f" {row['unit']}" if row["unit"] else ""
        lines.append(
            f"| {row['what']} | {row['start']:.1f}{unit} | {row['end']:.1f}{unit} | "
            f"{row['growth_pct']:+.1f} % |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15.0, help="measured duration")
    ap.add_argument("--warmup", type=float, default=1.0, help="minutes before the measurement")
    ap.add_argument("--docs", action="store_true", help="write the table into the docs")
    args = ap.parse_args()
    measured, warmup = args.minutes * 60, args.warmup * 60
    if measured < 2 * EDGE:
        raise SystemExit(f"--minutes must be at least {2 * EDGE / 60:g} (start and end windows)")
    console = Console()
    data_dir = Path(tempfile.mkdtemp(prefix="wk-soak-"))
    port = free_port()
    exe = shutil.which("watchkeeper")
    cmd = [exe] if exe else [sys.executable, "-m", "watchkeeper.cli"]
    cmd += ["serve", "--port", str(port), "--data-dir", str(data_dir)]
    env = {**os.environ, "WATCHKEEPER_LOG_LEVEL": "warning"}
    server = subprocess.Popen(cmd, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        register(base)
        prefill(base)
        soak = Soak(base, server, time.monotonic())
        threads = [threading.Thread(target=soak.sample, daemon=True)]
        threads += [
            threading.Thread(target=soak.every, args=(period, route, call), daemon=True)
            for route, (period, call) in routes(soak, MODEL).items()
        ]
        for th in threads:
            th.start()
        with Progress(console=console) as progress:
            task = progress.add_task("soaking", total=warmup + measured)
            while (elapsed := time.monotonic() - soak.started) < warmup + measured:
                if server.poll() is not None:
                    raise SystemExit(f"watchkeeper serve exited ({server.returncode})")
                progress.update(task, completed=elapsed)
                time.sleep(1)
        soak.stop.set()
        for th in threads:
            th.join(timeout=120)
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)
    result = summarise(soak, warmup, measured)
    report(console, result, soak, args)
    grown = [r["what"] for r in result["rows"] if r["growth_pct"] >= LIMIT]
    if grown or result["failed_count"]:
        console.print(
            f"[red]grew {LIMIT:g} % or more: {grown}; failed requests: {result['failed_count']}"
        )
        raise SystemExit(1)


def register(base: str) -> None:
    import io

    import pyarrow.parquet as pq

    ref = make_table(20_000, 0, 0).drop_columns(["prediction_id", "latency_ms"])
    buf = io.BytesIO()
    pq.write_table(ref, buf)
    r = httpx.put(
        f"{base}/v1/models/{MODEL}/versions/v1",
        params={"prediction": "prediction"},
        content=buf.getvalue(),
        headers={"content-type": "application/vnd.apache.parquet"},
        timeout=120,
    )
    r.raise_for_status()


def prefill(base: str) -> None:
    """Send :data:`PREFILL` batches dated in the window before the current one and wait for
    it to be evaluated (their prediction ids are apart from the load's)."""
    with httpx.Client(base_url=base, timeout=120) as client:
        window = client.get(f"/v1/models/{MODEL}").json()["window_seconds"]
        start = (time.time() // window - 1) * window
        for n in range(PREFILL):
            table = make_table(BATCH, 10_000 + n, 10**9 + n * BATCH)
            times = np.random.default_rng(n).uniform(start, start + window - 1, BATCH)
            table = table.append_column("timestamp", pa.array(times))
            sink = pa.BufferOutputStream()
            with ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            r = client.post(
                f"/v1/models/{MODEL}/predictions",
                content=sink.getvalue().to_pybytes(),
                headers={"content-type": "application/vnd.apache.arrow.stream"},
            )
            r.raise_for_status()
        deadline = time.monotonic() + 300
        while client.get(f"/v1/models/{MODEL}").json().get("latest_window") is None:
            if time.monotonic() > deadline:
                raise SystemExit("the prefilled window was not evaluated within 5 minutes")
            time.sleep(1)


def report(console: Console, result: dict[str, Any], soak: Soak, args: Any) -> None:
    table = Table("", "start", "end", "growth", title="soak: first vs last 2 minutes")
    for row in result["rows"]:
        table.add_row(
            row["what"], f"{row['start']:.1f}", f"{row['end']:.1f}", f"{row['growth_pct']:+.1f} %"
        )
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    samples = {"samples": soak.samples}
    (RESULTS / "soak.json").write_text(json.dumps({**result, **samples}, indent=1))
    md = markdown(result, args.minutes)
    (RESULTS / "soak.md").write_text(md)
    console.print(plot(soak, result["warmup_s"], RESULTS / "soak.png"))
    if args.docs:
        replace_section(DOCS_PAGE, DOCS_START, DOCS_END, md)


if __name__ == "__main__":
    main()
