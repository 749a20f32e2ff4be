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


def prepare_dir(path: Path) -> None:
    """A fresh demo directory; only a directory made by an earlier demo is ever wiped."""
    if path.exists():
        if not (path / MARKER).exists():
            raise FileExistsError(
                f"{path} exists and was not made by `watchkeeper demo`; pick another --data-dir"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("made by watchkeeper demo\n")


def start_server(app: Any, host: str, port: int) -> tuple[Any, threading.Thread]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="wk-demo-server", daemon=True)
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
            }
        )
    return events
