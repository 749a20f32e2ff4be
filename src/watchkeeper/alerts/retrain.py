"""The retraining trigger: when an alert fires, export the labelled window and run the user's
command (or call a webhook), one job per model at a time, with status, duration and log kept.

**The dataset.** The latest labelled window of the alert's model version at or before the
alert's window (normally the alert's own window), exported by :mod:`watchkeeper.alerts.export`
to ``<data_dir>/retrain/<model>/job-<id>.parquet``.

**The command** runs without a shell. ``{dataset}``, ``{model}``, ``{version}``, ``{alert}``,
``{window_start}``, ``{rows}``, ``{job}`` and ``{output}`` in its arguments are replaced, and the
same values are in the environment as ``WATCHKEEPER_DATASET``, ``WATCHKEEPER_MODEL``,
``WATCHKEEPER_VERSION``, ``WATCHKEEPER_ALERT_ID``, ``WATCHKEEPER_WINDOW_START``,
``WATCHKEEPER_ROWS``, ``WATCHKEEPER_JOB_ID``, ``WATCHKEEPER_OUTPUT``, with the alert as JSON in
``WATCHKEEPER_ALERT``. Past its timeout the command's process group is killed (status
``timeout``). Exit 0 is ``succeeded``.

**The new model.** ``{output}`` is a path (``<data_dir>/retrain/<model>/job-<id>.model``, not
there yet) where the command may write the model it trained (an ONNX or skops file). When it
did and the command succeeded, ``on_artifact`` (set by the server: it registers the file as a
new version whose reference is the exported window, and puts it in shadow) is called; if that
fails, the job fails with the reason.

**One job per model.** A retrain job holds the model's key (``running_key``, unique) while queued
or running; an alert firing meanwhile records a ``skipped`` job naming the one that runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from watchkeeper.alerts.export import export_window, labelled_window
from watchkeeper.alerts.monitors import Monitor
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

log = logging.getLogger("watchkeeper.alerts")
LOG_LIMIT = 64 * 1024  # characters of a job's output kept (the end)
PLACEHOLDERS = ("dataset", "model", "version", "alert", "window_start", "rows", "job", "output")
# (the job's row, the exported window, the model file the command wrote) -> a line for the log
OnArtifact = Callable[[Mapping[str, Any], Path | None, Path], str]


def enqueue_actions(
    conn: sa.Connection, monitor: Monitor, alert: Mapping[str, Any], now: float
) -> None:
    """One job row per action of ``monitor`` for the alert that just fired."""
    j = t.retrain_jobs.c
    for action in monitor.actions:
        row = {
            "model": alert["model"],
            "version": alert["version"],
            "alert_id": alert["id"],
            "monitor": monitor.name,
            "kind": action.type,
            "status": "queued",
            "running_key": alert["model"] if action.type == "retrain" else None,
            "action": action.to_dict(),
            "window_start": alert["window_start"],
            "created_at": now,
            "log": "",
        }
        if row["running_key"] is not None:
            busy = conn.execute(sa.select(j.id).where(j.running_key == alert["model"])).scalar()
            if busy is not None:
                row.update(
                    status="skipped",
                    running_key=None,
                    finished_at=now,
                    error=f"retrain job {busy} of model {alert['model']!r} is still running",
                )
        conn.execute(t.retrain_jobs.insert().values(**row))


class JobRunner:
    """Runs queued jobs, each in a thread of its own (``run_once`` starts them)."""

    def __init__(self, store: Store, data_dir: Path, lake_dir: Path) -> None:
        self.store, self.data_dir, self.lake_dir = store, data_dir, lake_dir
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self.on_artifact: OnArtifact | None = None

    def wake(self) -> None:
        self._wake.set()

    def recover(self) -> int:
        """Jobs left running by a process that stopped are failed (their command is gone)."""
        j = t.retrain_jobs.c
        with self.store.write() as conn:
            return int(
                conn.execute(
                    t.retrain_jobs.update()
                    .where(j.status.in_(("queued", "running")) & j.started_at.is_not(None))
                    .values(
                        status="failed",
                        running_key=None,
                        finished_at=time.time(),
                        error="interrupted: the server stopped while the job ran",
                    )
                ).rowcount
            )

    def start(self, interval: float = 1.0, gate: Callable[[], bool] | None = None) -> None:
        """Run queued jobs in a thread. ``gate``: whether this process runs jobs now (of
        several replicas, the holder of the ``jobs`` lease); on taking that over, the jobs the
        previous holder left running are failed (``recover``) first."""
        held = False

        def loop() -> None:
            nonlocal held
            while not self._stop.is_set():
                try:
                    now_held = gate is None or gate()
                    if now_held and not held:
                        self.recover()
                    held = now_held
                    if held:
                        self.run_once()
                except Exception:
                    log.exception("the job runner failed")
                self._wake.wait(interval)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="wk-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for proc in list(self._processes.values()):
            _kill(proc)
        if self._thread is not None:
            self._thread.join(timeout=10)
        for worker in self._workers:
            worker.join(timeout=10)

    def run_once(self, *, wait: bool = False) -> int:
        """Start every queued job; with ``wait``, return once they have ended."""
        j = t.retrain_jobs.c
        started = []
        with self.store.write() as conn:
            rows = (
                conn.execute(
                    sa.select(t.retrain_jobs)
                    .where((j.status == "queued") & j.started_at.is_(None))
                    .order_by(j.id)
                )
                .mappings()
                .all()
            )
            now = time.time()
            for row in rows:
                conn.execute(
                    t.retrain_jobs.update()
                    .where(j.id == row["id"])
                    .values(status="running", started_at=now)
                )
                started.append(dict(row))
        for job in started:
            worker = threading.Thread(
                target=self._run, args=(job,), name=f"wk-job-{job['id']}", daemon=True
            )
            self._workers = [w for w in self._workers if w.is_alive()] + [worker]
            worker.start()
        if wait:
            for worker in list(self._workers):
                worker.join()
        return len(started)

    def _run(self, job: dict[str, Any]) -> None:
        start = time.time()
        values: dict[str, Any]
        try:
            values = self._execute(job)
        except Exception as exc:
            log.exception("job %s failed", job["id"])
            values = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000]}
        end = time.time()
        values.update(finished_at=end, duration=end - start, running_key=None)
        if "log" in values:
            values["log"] = values["log"][-LOG_LIMIT:]
        with self.store.write() as conn:
            conn.execute(
                t.retrain_jobs.update().where(t.retrain_jobs.c.id == job["id"]).values(**values)
            )

    def _execute(self, job: dict[str, Any]) -> dict[str, Any]:
        alert = _alert(self.store, job["alert_id"])
        found = labelled_window(
            self.store, job["model"], job["version"], job["window_start"], alert.get("segment", "")
        )
        dataset, rows, window = None, 0, job["window_start"]
        if found is not None:
            window = found[0]
            dataset = self.data_dir / "retrain" / job["model"] / f"job-{job['id']}.parquet"
            rows = export_window(
                self.store,
                self.lake_dir,
                job["model"],
                job["version"],
                window,
                dataset,
                segment=alert.get("segment", ""),
            )
        with self.store.write() as conn:
            conn.execute(
                t.retrain_jobs.update()
                .where(t.retrain_jobs.c.id == job["id"])
                .values(
                    dataset=None if dataset is None else str(dataset),
                    rows=rows,
                    window_start=window,
                )
            )
        output = self.data_dir / "retrain" / job["model"] / f"job-{job['id']}.model"
        output.parent.mkdir(parents=True, exist_ok=True)
        output.unlink(missing_ok=True)  # only what this job's command writes counts
        facts = {
            "output": str(output),
            "dataset": "" if dataset is None else str(dataset),
            "model": job["model"],
            "version": job["version"],
            "alert": str(job["alert_id"]),
            "window_start": str(window),
            "rows": str(rows),
            "job": str(job["id"]),
        }
        action = job["action"]
        if job["kind"] == "webhook":
            return _call_webhook(action, {**facts, "alert": alert})
        result = self._command(job["id"], action, facts, alert)
        if result["status"] == "succeeded" and output.is_file() and self.on_artifact is not None:
            try:
                note = self.on_artifact({**job, "window_start": window}, dataset, output)
            except Exception as exc:
                return {
                    **result,
                    "status": "failed",
                    "error": f"the command's model at {output} was not registered: {exc}"[:2000],
                }
            result["log"] = f"{result['log']}\n{note}"
        return result

    def _command(
        self,
        job_id: int,
        action: Mapping[str, Any],
        facts: Mapping[str, str],
        alert: Mapping[str, Any],
    ) -> dict[str, Any]:
        args = [_fill(str(a), facts) for a in action["command"]]
        env = {
            **os.environ,
            **{f"WATCHKEEPER_{k.upper()}": v for k, v in facts.items() if k != "alert"},
            "WATCHKEEPER_ALERT_ID": facts["alert"],
            "WATCHKEEPER_JOB_ID": facts["job"],
            "WATCHKEEPER_ALERT": json.dumps(alert, default=str),
        }
        env.pop("WATCHKEEPER_JOB", None)
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=action.get("cwd"),
            start_new_session=True,  # its own process group: a timeout kills its children too
        )
        self._processes[job_id] = proc
        try:
            out, _ = proc.communicate(timeout=float(action["timeout"]))
        except subprocess.TimeoutExpired:
            _kill(proc)
            out, _ = proc.communicate()
            text = out.decode(errors="replace")
            return {
                "status": "timeout",
                "exit_code": proc.returncode,
                "log": text,
                "error": f"killed after the timeout of {action['timeout']:g} s",
            }
        finally:
            self._processes.pop(job_id, None)
        text = out.decode(errors="replace")
        if proc.returncode == 0:
            return {"status": "succeeded", "exit_code": 0, "log": text}
        if self._stop.is_set():
            return {
                "status": "failed",
                "exit_code": proc.returncode,
                "log": text,
                "error": "interrupted: the server stopped while the job ran",
            }
        return {
            "status": "failed",
            "exit_code": proc.returncode,
            "log": text,
            "error": f"the command exited with code {proc.returncode}",
        }


def _fill(arg: str, facts: Mapping[str, str]) -> str:
    for name in PLACEHOLDERS:
        arg = arg.replace("{" + name + "}", facts[name])
    return arg


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _alert(store: Store, alert_id: int) -> dict[str, Any]:
    from watchkeeper.alerts.queries import alert_dict

    with store.engine.connect() as conn:
        row = conn.execute(sa.select(t.alerts).where(t.alerts.c.id == alert_id)).mappings().one()
    return alert_dict(row)


def _call_webhook(action: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    data = json.dumps({"type": "watchkeeper.retrain", **body}, default=str).encode()
    request = urllib.request.Request(action["url"], data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=float(action["timeout"])) as resp:
            text = resp.read(4096).decode(errors="replace")
            return {
                "status": "succeeded",
                "exit_code": resp.status,
                "log": f"HTTP {resp.status}\n{text}",
            }
    except urllib.error.HTTPError as exc:
        text = exc.read(4096).decode(errors="replace")
        return {
            "status": "failed",
            "exit_code": exc.code,
            "log": f"HTTP {exc.code}\n{text}",
            "error": f"the webhook answered HTTP {exc.code}",
        }
    except OSError as exc:
        return {"status": "failed", "log": "", "error": f"cannot reach the webhook: {exc}"[:2000]}
