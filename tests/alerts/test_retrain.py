"""The retraining trigger in process, on SQLite and PostgreSQL: the real ingest, processor (the
Parquet lake), label join, evaluator and engine; the exported window checked row by row against
the events and labels sent; commands that succeed, fail and time out; one job per model; the
webhook action against a real receiver."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from watchkeeper.alerts.catalog import Catalog
from watchkeeper.alerts.engine import AlertEngine
from watchkeeper.alerts.export import export_window
from watchkeeper.alerts.monitors import parse_monitor
from watchkeeper.alerts.queries import get_job, list_alerts, list_jobs
from watchkeeper.alerts.retrain import JobRunner
from watchkeeper.evaluation.evaluate import Evaluator
from watchkeeper.ingest.processor import Processor
from watchkeeper.ingest.service import IngestService
from watchkeeper.settings import Settings
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

H = 3600
N = 120  # events per window
LABELLED = 90  # of which labelled


@dataclass
class Sent:
    events: dict[str, dict[str, Any]]  # prediction id → event
    labels: dict[str, int]


@dataclass
class Service:
    store: Store
    settings: Settings
    ingest: IngestService
    processor: Processor
    runner: JobRunner

    def send(self, ws: int, *, seed: int, accuracy: float) -> Sent:
        """N events in window ``ws``; labels for the first LABELLED, ``accuracy`` of them right."""
        rng = np.random.default_rng(seed)
        events, labels = {}, {}
        right = round(accuracy * LABELLED)
        for i in range(N):
            pid = f"w{ws}-{i}"
            pred = int(rng.integers(0, 2))
            events[pid] = {
                "prediction_id": pid,
                "timestamp": ws + 25.0 * i,
                "features": {
                    "x": round(float(rng.normal()), 6),
                    "plan": str(rng.choice(["a", "b"])),
                },
                "prediction": pred,
            }
            if i < LABELLED:
                labels[pid] = pred if i < right else 1 - pred
        result = self.ingest.ingest(
            "churn", json.dumps({"events": list(events.values())}).encode(), "application/json"
        )
        assert result.accepted == N, result.to_dict()
        while self.processor.run_once():
            pass
        body = {"actuals": [{"prediction_id": k, "label": v} for k, v in labels.items()]}
        assert self.ingest.actuals("churn", json.dumps(body).encode())["matched"] == LABELLED
        return Sent(events, labels)


@pytest.fixture
def service(
    database_url: str,
    open_store: Callable[[str], Store],
    tmp_path: Path,
) -> Iterator[Service]:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    store = open_store(database_url)
    ingest = IngestService(store, settings)
    rng = np.random.default_rng(0)
    ref = pa.table(
        {
            "x": rng.normal(0, 1, 500),
            "plan": rng.choice(["a", "b"], 500),
            "y": rng.integers(0, 2, 500),
            "p": rng.integers(0, 2, 500),
        }
    )
    ingest.register("churn", ref, target="y", prediction="p", window_seconds=H)
    runner = JobRunner(store, settings.data_dir, settings.lake_dir)
    yield Service(store, settings, ingest, Processor(store, settings), runner)
    runner.stop()


def windows() -> tuple[int, int]:
    """Two closed windows, inside every horizon."""
    last = int(time.time() // H * H) - H
    return last - H, last


def test_export_holds_exactly_the_labelled_predictions_of_the_window(
    service: Service, tmp_path: Path
) -> None:
    w1, w2 = windows()
    sent = service.send(w1, seed=1, accuracy=0.9)
    service.send(w2, seed=2, accuracy=0.5)  # another window: none of it belongs in the export
    out = tmp_path / "window.parquet"
    rows = export_window(service.store, service.settings.lake_dir, "churn", "v1", w1, out)
    table = pq.read_table(out)
    assert rows == table.num_rows == LABELLED
    got = table.to_pylist()
    assert [r["prediction_id"] for r in got] == [pid for pid in sent.events if pid in sent.labels]
    for r in got:
        event = sent.events[r["prediction_id"]]
        assert r["event_time"] == event["timestamp"]
        assert r["x"] == event["features"]["x"] and r["plan"] == event["features"]["plan"]
        # labels are stored as text; the export gives them the lake's prediction type
        assert str(r["prediction"]) == str(event["prediction"])
        assert str(r["label"]) == str(sent.labels[r["prediction_id"]])
    assert table.schema.field("label").type == table.schema.field("prediction").type
    correct = sum(r["prediction"] == r["label"] for r in got)
    assert correct == round(0.9 * LABELLED)


def engine_for(
    service: Service, *actions: dict[str, Any], names: tuple[str, ...] = ("floor",)
) -> AlertEngine:
    monitors = [
        parse_monitor(
            {
                "name": name,
                "model": "churn",
                "metric": "accuracy",
                "condition": "<= 0.85",
                "min_samples": 10,
                "actions": list(actions),
            },
            source="config",
            allow_commands=True,
        )
        for name in names
    ]
    return AlertEngine(service.store, Catalog(service.store, monitors), {})


SCRIPT = """
import json, os, sys
import pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
record = {
    "argv": sys.argv[1:],
    "env": {k: v for k, v in os.environ.items() if k.startswith("WATCHKEEPER_")},
    "rows": table.num_rows,
    "columns": table.column_names,
}
with open(sys.argv[2], "a") as fh:
    fh.write(json.dumps(record) + "\\n")
print("trained on", table.num_rows, "rows")
"""


def fire(service: Service, eng: AlertEngine, *, accuracy: float = 0.5) -> tuple[int, Sent]:
    _, w = windows()
    sent = service.send(w, seed=3, accuracy=accuracy)
    evaluator = Evaluator(service.store)
    evaluator.after_pass.append(eng.run_once)
    evaluator.run_once()
    return w, sent


def test_a_firing_alert_runs_the_command_once_with_the_window(
    service: Service, tmp_path: Path
) -> None:
    script, record = tmp_path / "train.py", tmp_path / "runs.jsonl"
    script.write_text(SCRIPT)
    command = [
        sys.executable,
        str(script),
        "{dataset}",
        str(record),
        "{model}",
        "{version}",
        "{alert}",
        "{rows}",
    ]
    eng = engine_for(service, {"type": "retrain", "command": command, "timeout": 60})
    w, _ = fire(service, eng)
    [alert] = list_alerts(service.store)
    assert alert["state"] == "firing" and alert["value"] == pytest.approx(
        round(0.5 * LABELLED) / LABELLED
    )
    [job] = list_jobs(service.store)
    assert (job["status"], job["kind"], job["alert_id"]) == ("queued", "retrain", alert["id"])
    assert service.runner.run_once(wait=True) == 1
    job = get_job(service.store, job["id"])
    assert (job["status"], job["exit_code"], job["rows"], job["window_start"]) == (
        "succeeded",
        0,
        LABELLED,
        w,
    )
    assert job["duration"] > 0 and f"trained on {LABELLED} rows" in job["log"]
    [run] = [json.loads(line) for line in record.read_text().splitlines()]
    assert run["argv"] == [
        job["dataset"],
        str(record),
        "churn",
        "v1",
        str(alert["id"]),
        str(LABELLED),
    ]
    assert run["rows"] == LABELLED and {"x", "plan", "prediction", "label"} <= set(run["columns"])
    env = run["env"]
    assert (env["WATCHKEEPER_DATASET"], env["WATCHKEEPER_MODEL"], env["WATCHKEEPER_VERSION"]) == (
        job["dataset"],
        "churn",
        "v1",
    )
    assert env["WATCHKEEPER_ALERT_ID"] == str(alert["id"]) and env[
        "WATCHKEEPER_WINDOW_START"
    ] == str(w)
    assert json.loads(env["WATCHKEEPER_ALERT"])["monitor"] == "floor"
    assert service.runner.run_once(wait=True) == 0  # nothing else queued: it ran once


def test_one_job_per_model_at_a_time(service: Service) -> None:
    action = {"type": "retrain", "command": [sys.executable, "-c", "pass"]}
    eng = engine_for(service, action, names=("first", "second"))
    fire(service, eng)
    jobs = sorted(list_jobs(service.store), key=lambda j: j["id"])
    assert [j["status"] for j in jobs] == ["queued", "skipped"]
    assert jobs[1]["error"] == f"retrain job {jobs[0]['id']} of model 'churn' is still running"
    service.runner.run_once(wait=True)
    assert get_job(service.store, jobs[0]["id"])["status"] == "succeeded"


@pytest.mark.parametrize(
    ("command", "timeout", "status", "exit_code", "error"),
    [
        (
            ["-c", "import sys; print('boom'); sys.exit(3)"],
            60,
            "failed",
            3,
            "the command exited with code 3",
        ),
        (
            ["-c", "import time; print('slow', flush=True); time.sleep(60)"],
            1,
            "timeout",
            -9,
            "killed after the timeout of 1 s",
        ),
    ],
)
def test_failing_and_hanging_commands(
    service: Service, command: list[str], timeout: float, status: str, exit_code: int, error: str
) -> None:
    eng = engine_for(
        service, {"type": "retrain", "command": [sys.executable, *command], "timeout": timeout}
    )
    fire(service, eng)
    start = time.monotonic()
    service.runner.run_once(wait=True)
    assert time.monotonic() - start < 30
    [job] = list_jobs(service.store)
    job = get_job(service.store, job["id"])
    assert (job["status"], job["exit_code"], job["error"]) == (status, exit_code, error)
    assert ("boom" if status == "failed" else "slow") in job["log"]
    with service.store.engine.connect() as conn:  # the model's key is free again
        assert conn.execute(sa.select(t.retrain_jobs.c.running_key)).scalar() is None


def test_webhook_action(service: Service, webhook_receiver: Any) -> None:
    eng = engine_for(service, {"type": "webhook", "url": webhook_receiver.url})
    w, _ = fire(service, eng)
    service.runner.run_once(wait=True)
    [request] = webhook_receiver.wait_for(1)
    body = request.json()
    assert body["type"] == "watchkeeper.retrain" and body["model"] == "churn"
    assert body["rows"] == str(LABELLED) and body["window_start"] == str(w)
    assert pq.read_table(body["dataset"]).num_rows == LABELLED
    [job] = list_jobs(service.store)
    assert job["status"] == "succeeded" and job["exit_code"] == 200


def test_jobs_interrupted_by_a_stop_are_failed_on_start(service: Service) -> None:
    eng = engine_for(service, {"type": "retrain", "command": [sys.executable, "-c", "pass"]})
    fire(service, eng)
    [job] = list_jobs(service.store)
    with service.store.write() as conn:
        conn.execute(t.retrain_jobs.update().values(status="running", started_at=time.time()))
    assert service.runner.recover() == 1
    job = get_job(service.store, job["id"])
    assert job["status"] == "failed" and "interrupted" in job["error"]


@pytest.mark.parametrize(
    ("prediction", "labels", "expected"),
    [
        (pa.array([1, 0]), ["0", "1"], pa.array([0, 1])),
        (pa.array([0.5, 1.5]), ["2.5", "1"], pa.array([2.5, 1.0])),
        (pa.array([True, False]), ["false", "True"], pa.array([False, True])),
        (pa.array([1, 0]), ["yes", "no"], pa.array(["yes", "no"])),  # does not cast: kept as text
        (pa.array(["a", "b"]), ["b", "a"], pa.array(["b", "a"])),
    ],
)
def test_labels_take_the_predictions_type(
    prediction: pa.Array, labels: list[str], expected: pa.Array
) -> None:
    from watchkeeper.alerts.export import typed_labels

    got = typed_labels(pa.array(labels), pa.table({"prediction": prediction}))
    assert got.equals(expected)
