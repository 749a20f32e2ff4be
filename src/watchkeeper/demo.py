"""``watchkeeper demo``: the whole loop, live — a served model degrades, an alert fires, a
retraining job trains a challenger, the challenger proves itself in shadow on the same
requests, it is promoted, and accuracy recovers.

The service runs on embedded defaults with short windows (``window_seconds``, 20 s). Version
``v1`` of the example churn model (:mod:`watchkeeper.example_model`) is trained on the
example's training data, registered with it as the reference (its target, v1's prediction
and v1's score, so the service fits the performance estimator) and served. A monitor watches
its accuracy (below the training baseline minus 0.1 fires) and retrains with the example
model's own script, ``python -m watchkeeper.example_model {dataset} {output}``; a promotion
policy (auto, accuracy) judges the retrained version in shadow. A second monitor watches the
*estimated* accuracy (below the baseline minus 0.05 fires, no action): it fires when the
changed window closes, before that window's labels have come.

A background thread sends traffic to ``POST /v1/models/churn/predict`` in small batches with
prediction ids, and posts each batch's labels ``label_delay`` windows (one and a half) later:
a window is evaluated, and estimated, when it closes, half a window before its first labels.
After ``windows_before`` windows the world changes: new kinds of customers (input drift:
income, credit score, country mix, a new plan), older customers (``aged``: a covariate shift
that puts more of them near v1's decision boundary, which the estimate sees without labels) and
churn no longer follows activity (concept drift, ``concept`` times the example's documented
change, which only the labels show), so v1's accuracy falls: the estimate first, when the
window closes, the realized accuracy, further, when its labels come. The run ends once a window
answered by the promoted version has all its labels (or after ``minutes``, naming the step
that did not happen); :mod:`watchkeeper.demo_story` then prints what happened, read from the
API.
"""

from __future__ import annotations

import http.client
import io
import json
import shutil
import socket
import sys
import threading
import time
import urllib.request
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from watchkeeper.example_model import FEATURES
from watchkeeper.examples import _frame
from watchkeeper.server.launch import LOCK_NAME, DataDirLock, listen

MODEL = "churn"
MARKER = ".watchkeeper-demo"
MONITOR = "accuracy-floor"
ESTIMATED_MONITOR = "estimated-accuracy-floor"
SCORE = "churn_score"  # v1's score of churn in the reference


@dataclass
class DemoPlan:
    window_seconds: int = 20
    rows_per_second: float = 40.0
    batch_rows: int = 10
    windows_before: int = 2  # full windows of the old world before it changes
    concept: float = 4.0  # strength of the change of the feature → churn relation
    aged: float = 1.0  # strength of the covariate shift (older customers)
    label_delay: float = 1.5  # windows from a request to its label
    minutes: float = 8.0  # give up after this long
    reference_rows: int = 20_000
    seed: int = 11

    def __post_init__(self) -> None:
        if self.window_seconds < 2:
            raise ValueError(f"window_seconds must be at least 2, got {self.window_seconds}")
        if self.rows_per_second <= 0 or self.batch_rows < 1:
            raise ValueError("rows_per_second must be positive and batch_rows at least 1")

    @property
    def rows_per_window(self) -> int:
        return int(self.rows_per_second * self.window_seconds)

    @property
    def min_samples(self) -> int:
        """Labels a window needs before the monitor judges it (and the retraining job trains
        on): half a window's rows."""
        return max(20, self.rows_per_window // 2)

    @property
    def min_labelled(self) -> int:
        """Labelled shadow pairs a verdict needs: half a window's rows, at most 300."""
        return max(30, min(300, self.rows_per_window // 2))


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


def demo_settings(plan: DemoPlan, threshold: float) -> dict[str, Any]:
    """The monitor with its retraining command, the monitor of the estimated accuracy (which
    fires before the labels come; a notice, no action), and the promotion policy."""
    return {
        "window_seconds": plan.window_seconds,
        "evaluation_interval_seconds": min(1.0, plan.window_seconds / 10),
        "monitors": [
            {
                "name": MONITOR,
                "model": MODEL,
                "metric": "accuracy",
                "condition": f"< {threshold:.2f}",
                "min_samples": plan.min_samples,
                "for_windows": 1,
                "actions": [
                    {
                        "type": "retrain",
                        "command": [
                            sys.executable,
                            "-m",
                            "watchkeeper.example_model",
                            "{dataset}",
                            "{output}",
                        ],
                        "timeout": 300,
                    }
                ],
            },
            {
                "name": ESTIMATED_MONITOR,
                "model": MODEL,
                "metric": "estimated_accuracy",
                "condition": f"< {estimated_threshold(threshold):.2f}",
                "min_samples": plan.min_samples,
                "for_windows": 1,
            },
        ],
        "promotion_policies": {
            MODEL: {"metric": "accuracy", "min_labelled": plan.min_labelled, "mode": "auto"}
        },
    }


def estimated_threshold(threshold: float) -> float:
    """The estimated accuracy's floor: halfway between the accuracy's floor and the baseline
    (the estimate of a window varies far less than its realized accuracy)."""
    return round(threshold + 0.05, 2)


def champion_v1(plan: DemoPlan) -> tuple[pa.Table, Any, float]:
    """(reference, model, its accuracy on the reference): v1 trained on the example's training
    data, the reference carrying v1's predictions, so the training baseline is v1's, and v1's
    score of churn (class 1), so the service fits the estimator of its performance."""
    from watchkeeper.example_model import features, target, train

    rng = np.random.default_rng(plan.seed)
    table = _frame(rng, plan.reference_rows, datetime(2026, 10, 1), drifted=False, first_id=0)
    model = train(table)
    predicted = np.asarray(model.predict(features(table)), dtype=np.int64)
    score = np.asarray(model.predict_proba(features(table)), dtype=np.float64)[:, 1]
    reference = (
        table.select([*FEATURES, "churned"])
        .append_column("churn_predicted", pa.array(predicted))
        .append_column(SCORE, pa.array(score))
    )
    return reference, model, float(np.mean(predicted == target(table)))


def register(base_url: str, plan: DemoPlan, reference: pa.Table, model: Any) -> None:
    import skops.io as sio

    buf = io.BytesIO()
    pq.write_table(reference, buf)
    query = (
        # every feature is a model input, named in order with the artifact (a retrained
        # version is fed the same inputs)
        # (served events carry the score as their scores map's `score.1`)
        f"target=churned&prediction=churn_predicted&scores={SCORE}"
        f"&window_seconds={plan.window_seconds}"
    )
    _call(
        f"{base_url}/v1/models/{MODEL}/versions/v1?{query}",
        buf.getvalue(),
        "PUT",
        "application/vnd.apache.parquet",
    )
    _call(
        f"{base_url}/v1/models/{MODEL}/versions/v1/artifact?features={','.join(FEATURES)}",
        sio.dumps(model),
        "PUT",
        "application/x-skops",
    )


def _call(url: str, body: bytes, method: str, content_type: str) -> Any:
    req = urllib.request.Request(
        url, data=body, method=method, headers={"content-type": content_type}
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read() or b"null")


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


@dataclass
class Traffic:
    """Requests to the inference endpoint from a background thread, and their labels
    ``plan.label_delay`` windows later; the world changes at ``change_at`` (epoch seconds)."""

    host: str
    port: int
    plan: DemoPlan
    change_at: float
    sent: int = 0
    labelled: int = 0
    failed: int = 0
    answered_by: Counter[str] = field(default_factory=Counter)
    last_error: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def changed(self) -> bool:
        return time.time() >= self.change_at

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wk-demo-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        rng = np.random.default_rng(self.plan.seed + 1)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        pending: deque[tuple[float, list[dict[str, Any]]]] = deque()
        pause = self.plan.batch_rows / self.plan.rows_per_second
        n = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            changed = self.changed
            table = _frame(
                rng,
                self.plan.batch_rows,
                datetime.now(UTC),
                drifted=changed,
                concept=self.plan.concept if changed else 0.0,
                aged=self.plan.aged if changed else 0.0,
                first_id=n,
                span_seconds=pause,
            )
            n += table.num_rows
            ids = [f"demo-{i:08d}" for i in range(n - table.num_rows, n)]
            columns = {name: _json_values(table.column(name)) for name in FEATURES}
            try:
                answer = self._post(conn, "predict", {"columns": columns, "prediction_ids": ids})
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.failed += table.num_rows
                self.last_error = str(exc)
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            else:
                self.sent += table.num_rows
                self.answered_by[answer["version"]] += table.num_rows
                labels = table.column("churned").to_pylist()
                actuals = [
                    {"prediction_id": pid, "label": int(label)}
                    for pid, label in zip(answer["prediction_ids"], labels, strict=True)
                ]
                pending.append(
                    (time.time() + self.plan.window_seconds * self.plan.label_delay, actuals)
                )
            while pending and pending[0][0] <= time.time():
                actuals = pending.popleft()[1]
                try:
                    self._post(conn, "actuals", {"actuals": actuals})
                    self.labelled += len(actuals)
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    self.last_error = str(exc)
                    conn.close()
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            next_at += pause
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        conn.close()

    def _post(self, conn: http.client.HTTPConnection, route: str, body: Any) -> Any:
        conn.request(
            "POST",
            f"/v1/models/{MODEL}/{route}",
            body=json.dumps(body),
            headers={"content-type": "application/json"},
        )
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 400:
            raise ValueError(f"{route}: {resp.status} {data[:300]!r}")
        return json.loads(data)


def _json_values(column: pa.ChunkedArray) -> list[Any]:
    """A column as JSON values: NaN (a missing balance) as null."""
    return [
        None if isinstance(v, float) and v != v else v  # noqa: PLR0124 (NaN)
        for v in column.to_pylist()
    ]


def run_demo(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8700,
    plan: DemoPlan | None = None,
    keep_serving: bool = True,
) -> dict[str, Any]:
    """Run the demo; returns the story read from the API (empty when it was interrupted)."""
    from watchkeeper.demo_story import Story, print_story, print_where_to_look, watch
    from watchkeeper.progress import output_console
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
    started = time.time()
    reference, model, baseline = champion_v1(plan)
    threshold = round(baseline - 0.1, 2)
    settings = load_settings(
        data_dir=data_dir, host=host, port=port, **demo_settings(plan, threshold)
    )
    server, thread = start_server(create_app(settings), host, port, sock)
    base = f"http://{host}:{port}"
    story: dict[str, Any] = {}
    traffic: Traffic | None = None
    console.print(f"[bold]watchkeeper demo[/] · service on {base} · data in {data_dir}")
    console.print(f"dashboard: {base}/ui/models/{MODEL} (open it now and watch)")
    try:
        register(base, plan, reference, model)
        console.print(
            f"v1 of {MODEL!r} trained on {plan.reference_rows:,} rows (accuracy {baseline:.3f})"
            f", registered with them as its reference and served; monitor {MONITOR!r}: "
            f"accuracy < {threshold:.2f} retrains with `python -m watchkeeper.example_model`; "
            f"monitor {ESTIMATED_MONITOR!r}: estimated accuracy "
            f"< {estimated_threshold(threshold):.2f} (before the labels)"
        )
        w = plan.window_seconds
        change_at = (time.time() // w + 1 + plan.windows_before) * w
        traffic = Traffic(host, port, plan, change_at)
        traffic.start()
        estimates: dict[int, dict[str, Any]] = {}
        outcome = watch(
            base, plan, traffic, console, deadline=started + plan.minutes * 60, estimates=estimates
        )
        traffic.stop()
        story = Story.read(
            base, started, change_at, baseline, threshold, outcome, estimates
        ).to_dict()
        print_story(console, story)
        print_where_to_look(console, base, settings)
        if keep_serving:
            console.print("serving until Ctrl-C …")
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        console.print("stopping …")
    finally:
        if traffic is not None:
            traffic.stop()
        server.should_exit = True
        thread.join(timeout=30)
        lock.release()
    return story
