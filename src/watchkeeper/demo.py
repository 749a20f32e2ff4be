"""``watchkeeper demo``: the service on embedded defaults, an example model, and a replayed
production stream in which drift and a quality drop appear while you watch.

The stream covers ``hours`` of simulated traffic ending now, one hour per step. The inputs
drift gradually from 30 % of the way in (income, credit score, country mix, a new plan); the
relation between inputs and churn changes from 55 % of the way in, so accuracy drops; ground
truth for each hour arrives ``label_delay_hours`` steps later; about 1 % of requests fail.
"""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from watchkeeper.examples import _frame, churn_example
from watchkeeper.server.launch import LOCK_NAME, DataDirLock, listen

MODEL = "churn"
MARKER = ".watchkeeper-demo"
FEATURES = (
    "age",
    "income",
    "tenure_months",
    "credit_score",
    "balance",
    "num_products",
    "country",
    "plan",
    "is_active",
)


@dataclass
class DemoPlan:
    hours: int = 48
    events_per_hour: int = 400
    label_delay_hours: int = 6
    drift_start: float = 0.3
    concept_start: float = 0.55
    seed: int = 11

    def drift(self, h: int) -> float:
        x = (h / max(self.hours - 1, 1) - self.drift_start) / (1 - self.drift_start)
        return float(np.clip(x, 0.0, 1.0))

    def concept(self, h: int) -> float:
        return 1.0 if h / max(self.hours - 1, 1) >= self.concept_start else 0.0


def prepare_dir(path: Path) -> DataDirLock:
    """A fresh demo directory, claimed for this process; only a directory made by an earlier
    demo is ever wiped, and never while another process (a running demo or ``serve``) holds it.
    """
    if path.exists() and not (path / MARKER).exists():
        raise FileExistsError(
            f"{path} exists and was not made by `watchkeeper demo`; pick another --data-dir"
        )
    lock = DataDirLock(path, owner="watchkeeper demo").acquire()
    for entry in path.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    (path / MARKER).write_text("made by watchkeeper demo\n")
    return lock


def start_server(
    app: Any, host: str, port: int, sock: socket.socket | None = None
) -> tuple[Any, threading.Thread]:
    import uvicorn

    sock = sock or listen(host, port)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="wk-demo-server", daemon=True
    )
    thread.start()
    url = f"http://{host}:{port}/healthz"
    for _ in range(200):
        try:
            with urllib.request.urlopen(url, timeout=1):
                return server, thread
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the demo server did not start on {host}:{port}")


def register(base_url: str, reference_rows: int, window_seconds: int) -> None:
    ref, _ = churn_example(reference_rows=reference_rows, current_rows=10)
    buf = io.BytesIO()
    pq.write_table(ref, buf)
    query = (
        f"target=churned&prediction=churn_predicted&scores=churn_score"
        f"&segments=country&window_seconds={window_seconds}"
    )
    req = urllib.request.Request(
        f"{base_url}/v1/models/{MODEL}/versions/v1?{query}",
        data=buf.getvalue(),
        method="PUT",
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        resp.read()


def hour_events(
    plan: DemoPlan, h: int, start: float, rng: np.random.Generator
) -> list[dict[str, Any]]:
    table = _frame(
        rng,
        plan.events_per_hour,
        datetime.fromtimestamp(start, UTC).replace(tzinfo=None),
        drifted=plan.drift(h),
        concept=plan.concept(h),
        first_id=h * plan.events_per_hour,
        span_seconds=3600,
    )
    rows = table.to_pylist()
    latency = rng.lognormal(np.log(18 + 10 * plan.drift(h)), 0.4, len(rows))
    failed = rng.random(len(rows)) < 0.01
    events = []
    for row, ms, fail in zip(rows, latency, failed, strict=True):
        stamp = row["event_time"].replace(tzinfo=UTC).timestamp()
        events.append(
            {
                "prediction_id": f"{row['customer_id']}-{h}",
                "timestamp": stamp,
                "features": {k: row[k] for k in FEATURES},
                "prediction": None if fail else row["churn_predicted"],
                "latency_ms": float(ms) * (4 if fail else 1),
                "status": "error" if fail else "ok",
                "error": "TimeoutError: feature store did not answer" if fail else None,
                "label": row["churned"],
                "scores": None if fail else {"1": float(row["churn_score"])},
            }
        )
    return events


def _get(url: str) -> Any:
    import json

    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def run_demo(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8700,
    plan: DemoPlan | None = None,
    hours_per_second: float = 4.0,
    keep_serving: bool = True,
) -> dict[str, Any]:
    """Run the demo; returns the model's status once the replay has been evaluated."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from watchkeeper.progress import output_console
    from watchkeeper.sdk import Client
    from watchkeeper.server.app import create_app
    from watchkeeper.settings import load_settings

    plan = plan or DemoPlan()
    console = output_console(stderr=True)
    sock = listen(host, port)  # before anything is written: a taken port changes nothing
    try:
        lock = prepare_dir(data_dir)
    except BaseException:
        sock.close()
        raise
    settings = load_settings(
        data_dir=data_dir,
        host=host,
        port=port,
        window_seconds=3600,
        evaluation_interval_seconds=1.0,
    )
    server, thread = start_server(create_app(settings), host, port, sock)
    base = f"http://{host}:{port}"
    console.print(f"[bold]watchkeeper demo[/] · service on {base} · data in {data_dir}")
    register(base, reference_rows=20_000, window_seconds=3600)
    console.print(f"registered model [bold]{MODEL}[/] v1 with a 20,000-row training reference")
    client = Client(base, spool_dir=data_dir / "spool")
    rng = np.random.default_rng(plan.seed)
    first_hour = (int(time.time()) // 3600 - plan.hours) * 3600
    waiting: dict[int, list[tuple[str, Any]]] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
    )
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("replaying hours", total=plan.hours, note="")
            for h in range(plan.hours):
                events = hour_events(plan, h, first_hour + h * 3600, rng)
                for e in events:
                    client.log_prediction(
                        MODEL,
                        e["features"],
                        e["prediction"],
                        prediction_id=e["prediction_id"],
                        timestamp=e["timestamp"],
                        latency_ms=e["latency_ms"],
                        status=e["status"],
                        error=e["error"],
                        scores=e["scores"],
                    )
                waiting[h] = [
                    (e["prediction_id"], e["label"]) for e in events if e["status"] == "ok"
                ]
                for pid, label in waiting.pop(h - plan.label_delay_hours, []):
                    client.log_actual(MODEL, pid, label)
                note = f"input drift {plan.drift(h):.0%}" + (
                    " · concept drift" if plan.concept(h) else ""
                )
                progress.update(task, advance=1, note=note)
                time.sleep(1 / hours_per_second)
        client.flush(timeout=60)
        console.print(
            f"{plan.hours * plan.events_per_hour:,} predictions sent; labels arrived "
            f"{plan.label_delay_hours} h late, so the last {plan.label_delay_hours} hours "
            "have none yet"
        )
        status = _wait_evaluated(base, first_hour + (plan.hours - 1) * 3600, console)
        _print_where_to_look(console, base, settings, status)
        if keep_serving:
            console.print("serving until Ctrl-C …")
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        console.print("stopping …")
    finally:
        client.close(timeout=5)
        server.should_exit = True
        thread.join(timeout=30)
        lock.release()
    return status if "status" in locals() else {}


def _wait_evaluated(
    base: str, last_window: int, console: Any, timeout: float = 180
) -> dict[str, Any]:
    deadline = time.time() + timeout
    with console.status("waiting for the last window to be evaluated"):
        while time.time() < deadline:
            status: dict[str, Any] = _get(f"{base}/v1/models/{MODEL}")
            latest = status.get("latest_window") or {}
            if status.get("events_pending") == 0 and latest.get("window_start", 0) >= last_window:
                return status
            time.sleep(0.5)
    final: dict[str, Any] = _get(f"{base}/v1/models/{MODEL}")
    return final


def _print_where_to_look(console: Any, base: str, settings: Any, status: dict[str, Any]) -> None:
    acc = _get(f"{base}/v1/models/{MODEL}/metrics?metric=accuracy")["points"]
    share = _get(f"{base}/v1/models/{MODEL}/metrics?metric=drifted_share")["points"]
    p95 = _get(f"{base}/v1/models/{MODEL}/metrics?metric=latency_p95")["points"]

    def fmt(points: list[dict[str, Any]], i: int, pattern: str) -> str:
        value = points[i]["value"] if points and points[i]["value"] is not None else None
        return "—" if value is None else pattern.format(value)

    console.print(
        f"events stored {status['events_total']:,} · quarantined {status['quarantined_total']:,}"
        f" · labels joined {status['actuals_total']:,}"
    )
    console.print(
        f"drifted features: first window {fmt(share, 0, '{:.0%}')}"
        f" → last {fmt(share, -1, '{:.0%}')}"
    )
    console.print(
        f"accuracy: first labelled window {fmt(acc, 0, '{:.3f}')} → last {fmt(acc, -1, '{:.3f}')}"
    )
    console.print(f"latency p95: {fmt(p95, 0, '{:.3f}')} s → {fmt(p95, -1, '{:.3f}')} s")
    console.print("[bold]where to look[/]")
    for what, url in (
        ("dashboard", f"{base}/ui/models/{MODEL}"),
        ("model status", f"{base}/v1/models/{MODEL}"),
        ("accuracy over time", f"{base}/v1/models/{MODEL}/metrics?metric=accuracy"),
        (
            "drift of income",
            f"{base}/v1/models/{MODEL}/metrics?metric=drift_statistic&feature=income",
        ),
        ("Prometheus metrics", f"{base}/metrics"),
        ("API docs", f"{base}/docs"),
    ):
        console.print(f"  {what:<20} {url}")
    console.print(f"  {'raw events (DuckDB)':<20} {settings.lake_dir}/model={MODEL}/**/*.parquet")
