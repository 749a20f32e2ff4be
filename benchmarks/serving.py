"""Serving benchmark: watchkeeper's inference endpoints next to a bare FastAPI app with the
same runtimes (the floor: no monitoring) and MLflow's own model server, on the same ONNX and
scikit-learn models, in one run.

    python benchmarks/serving.py --models onnx --update-docs      # about 7 minutes
    python benchmarks/serving.py --models sklearn --update-docs   # the skops model
    python benchmarks/serving.py --plot benchmarks/results/serving-onnx.json   # the PNG only

Every server is its own process on loopback with one uvicorn worker (its thread pool at its
default); the load generator (``serving_load.py``) is another process, a closed loop of N
keep-alive connections. For each configuration (model, rows per request, connections) the
servers are measured back to back after a warm-up, and watchkeeper's background processor is
drained before the next server starts and counted in watchkeeper's CPU time. Results go to
``benchmarks/results/serving-<models>.json`` and ``.md``; the latency plot to
``docs/images/serving-latency-<models>.png`` (needs matplotlib). ``--update-docs`` writes the
table between the markers ``<!-- serving-<models>:start/end -->`` of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_report import QUANTILES, plot, summarise, write_outputs

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
FEATURES = [f"f{i}" for i in range(10)]
KINDS = ("onnx", "sklearn")
QUIET = {  # the peers at their defaults, their telemetry off
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "WATCHKEEPER_LOG_LEVEL": "warning",
    "WATCHKEEPER_MAX_PENDING_EVENTS": str(10**9),
}


@dataclass
class Target:
    """One server endpoint under test."""

    server: str  # floor, watchkeeper, mlflow
    endpoint: str  # the route, for the table
    url: dict[str, str]  # per model kind
    proc: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


# --------------------------------------------------------------------------- the models
def make_models(work: Path) -> dict[str, Path]:
    """A scaled logistic regression on 10 features, exported as ONNX (skl2onnx) and skops,
    and saved as MLflow models of both flavours; and the reference data to register."""
    import mlflow.onnx
    import mlflow.sklearn
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import skops.io as sio
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (2000, len(FEATURES)))
    y = np.where(x @ rng.normal(0, 1, len(FEATURES)) + rng.normal(0, 1, len(x)) > 0, "yes", "no")
    frame = pd.DataFrame(x, columns=FEATURES)
    clf = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, y)
    paths = {"onnx": work / "model.onnx", "skops": work / "model.skops"}
    onx = to_onnx(
        make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y),
        initial_types=[("input", FloatTensorType([None, len(FEATURES)]))],
        options={LogisticRegression: {"zipmap": False}},
        target_opset=15,
    )
    paths["onnx"].write_bytes(onx.SerializeToString())
    paths["skops"].write_bytes(sio.dumps(clf))
    mlflow.sklearn.save_model(clf, str(work / "mlflow-sklearn"))
    mlflow.onnx.save_model(onx, str(work / "mlflow-onnx"))
    paths["mlflow-sklearn"], paths["mlflow-onnx"] = work / "mlflow-sklearn", work / "mlflow-onnx"
    reference = pa.table({**{f: x[:, i] for i, f in enumerate(FEATURES)}, "label": y, "pred": y})
    buf = io.BytesIO()
    pq.write_table(reference, buf)
    paths["reference"] = work / "reference.parquet"
    paths["reference"].write_bytes(buf.getvalue())
    return paths


def bodies(rows: int) -> dict[str, bytes]:
    """The same rows in each server's request body."""
    x = np.round(np.random.default_rng(rows).normal(0, 1, (rows, len(FEATURES))), 6)
    records = [dict(zip(FEATURES, map(float, r), strict=True)) for r in x]
    oip = {"inputs": [{"name": "input", "shape": [rows, len(FEATURES)], "datatype": "FP64"}]}
    oip["inputs"][0]["data"] = x.tolist()
    return {
        "rows": json.dumps({"rows": records}).encode(),
        "oip": json.dumps(oip).encode(),
        "mlflow-sklearn": json.dumps({"dataframe_records": records}).encode(),
        # MLflow's ONNX flavour cannot turn this classifier's two outputs (labels, [N, 2]
        # probabilities) into a DataFrame ("All arrays must be of the same length"), so it is
        # sent the tensor form, which it answers with both outputs
        "mlflow-onnx": json.dumps({"inputs": {"input": x.tolist()}}).encode(),
    }


# --------------------------------------------------------------------------- the servers
def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(cmd, env={**os.environ, **QUIET, **env}, stdout=out, stderr=out)


def _wait(url: str, proc: subprocess.Popen[bytes], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not answer {url} within {seconds:.0f} s")


def _request(method: str, url: str, body: bytes, ctype: str) -> Any:
    req = urllib.request.Request(url, data=body, method=method, headers={"content-type": ctype})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def start_servers(
    work: Path, paths: dict[str, Path], ports: list[int], database: str | None
) -> list[Target]:
    py = sys.executable
    floor_env = {
        "SERVING_FLOOR_ONNX": str(paths["onnx"]),
        "SERVING_FLOOR_SKOPS": str(paths["skops"]),
        "SERVING_FLOOR_FEATURES": ",".join(FEATURES),
    }
    uvicorn = [py, "-m", "uvicorn", "--log-level", "warning", "--host", "127.0.0.1"]
    floor = _spawn(
        [*uvicorn, "--app-dir", str(BENCH), "--port", str(ports[0]), "serving_floor:app"],
        floor_env,
        work / "floor.log",
    )
    wk_cmd = [py, "-m", "watchkeeper.cli", "serve", "--port", str(ports[1])]
    wk_cmd += ["--data-dir", str(work / "wk")] + (["--database", database] if database else [])
    wk = _spawn(wk_cmd, {}, work / "watchkeeper.log")
    mlflow_bin = Path(py).with_name("mlflow")
    mlflow: dict[str, subprocess.Popen[bytes]] = {}
    for kind, port in zip(KINDS, ports[2:], strict=True):
        cmd = [str(mlflow_bin), "models", "serve", "-m", str(paths[f"mlflow-{kind}"])]
        cmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
        path_env = {"PATH": f"{Path(py).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        mlflow[kind] = _spawn(cmd, path_env, work / f"mlflow-{kind}.log")
    base = [f"http://127.0.0.1:{p}" for p in ports]
    _wait(f"{base[0]}/docs", floor, "the floor")
    _wait(f"{base[1]}/healthz", wk, "watchkeeper")
    for kind, b in zip(KINDS, base[2:], strict=True):
        _wait(f"{b}/ping", mlflow[kind], f"mlflow models serve ({kind})")
    for kind in KINDS:
        art, ctype = (
            (paths["onnx"], "application/onnx")
            if kind == "onnx"
            else (paths["skops"], "application/x-skops")
        )
        # bench-<kind>: v1 alone; bench-<kind>-shadow: v1 answers, v2 (the same model) in shadow
        for model, versions in ((f"bench-{kind}", ["v1"]), (f"bench-{kind}-shadow", ["v1", "v2"])):
            for version in versions:
                _request(
                    "PUT",
                    f"{base[1]}/v1/models/{model}/versions/{version}?target=label&prediction=pred"
                    + ("&champion=false" if version != "v1" else ""),
                    paths["reference"].read_bytes(),
                    "application/vnd.apache.parquet",
                )
                _request(
                    "PUT",
                    f"{base[1]}/v1/models/{model}/versions/{version}/artifact"
                    f"?features={','.join(FEATURES)}",
                    art.read_bytes(),
                    ctype,
                )
        _request(
            "POST",
            f"{base[1]}/v1/models/bench-{kind}-shadow/versions/v2/challenge",
            json.dumps({"mode": "shadow"}).encode(),
            "application/json",
        )
    wk_procs = dict.fromkeys(KINDS, wk)
    return [
        Target("floor", "POST /predict", {k: f"{base[0]}/predict/{k}" for k in KINDS},
               dict.fromkeys(KINDS, floor)),
        Target("watchkeeper", "POST /v1/models/{m}/predict",
               {k: f"{base[1]}/v1/models/bench-{k}/predict" for k in KINDS}, wk_procs),
        Target("watchkeeper", "POST /v2/models/{m}/infer",
               {k: f"{base[1]}/v2/models/bench-{k}/infer" for k in KINDS}, wk_procs),
        Target("mlflow", "POST /invocations",
               {k: f"{b}/invocations" for k, b in zip(KINDS, base[2:], strict=True)}, mlflow),
        # the goal "shadow on moves the champion's p99 by < 10 %": the same v1 endpoint of a
        # model whose second version (the same artifact) scores a copy of each request
        Target("watchkeeper + shadow", "POST /v1/models/{m}/predict",
               {k: f"{base[1]}/v1/models/bench-{k}-shadow/predict" for k in KINDS}, wk_procs),
    ]  # fmt: skip


def drain(base: str) -> None:
    """Wait until watchkeeper's processor has handled every logged event."""
    for model in [f"bench-{kind}{suffix}" for kind in KINDS for suffix in ("", "-shadow")]:
        while True:
            with urllib.request.urlopen(f"{base}/v1/models/{model}", timeout=60) as resp:
                if json.loads(resp.read())["events_pending"] == 0:
                    break
            time.sleep(0.1)


# --------------------------------------------------------------------------- /proc
def _tree(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (Linux /proc)."""
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def threads(pid: int) -> list[int]:
    """Threads per process of the tree (the server, then its children)."""
    out = []
    for p in _tree(pid):
        try:
            out.append(len(list(Path(f"/proc/{p}/task").iterdir())))
        except OSError:
            continue
    return out


# --------------------------------------------------------------------------- one measurement
def measure(
    target: Target, kind: str, body: bytes, concurrency: int, requests: int, work: Path
) -> dict[str, Any]:
    body_file = work / "body.json"
    body_file.write_bytes(body)
    proc = target.proc[kind]
    watchkeeper = target.server.startswith("watchkeeper")
    wk_base = target.url[kind].split("/v", 1)[0] if watchkeeper else None
    cpu0 = cpu_seconds(proc.pid)
    cmd = [sys.executable, str(BENCH / "serving_load.py"), "--url", target.url[kind]]
    cmd += ["--body", str(body_file), "--concurrency", str(concurrency)]
    cmd += ["--requests", str(requests), "--warmup", str(max(100, requests // 15))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    load: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout else {}
    if "latencies_ms" not in load:
        return {"error": load.get("error") or out.stderr[-500:]}
    t0 = time.perf_counter()
    if wk_base:
        drain(wk_base)  # the monitoring's work is counted in its CPU time
    lat = np.asarray(load["latencies_ms"])
    return {
        "requests": len(lat),
        "failures": load["failures"],
        "failure": load["failure"],
        "median_ms": float(np.median(lat)),
        "p99_ms": float(np.percentile(lat, 99)),
        "mean_ms": float(lat.mean()),
        "requests_per_s": len(lat) / load["wall_seconds"],
        "wall_seconds": load["wall_seconds"],
        "drain_seconds": time.perf_counter() - t0 if wk_base else 0.0,
        "server_cpu_seconds": cpu_seconds(proc.pid) - cpu0,
        "client_cpu_seconds": load["client_cpu_seconds"],
        "server_threads": threads(proc.pid),
        "quantiles_ms": np.percentile(lat, QUANTILES).round(4).tolist(),
        "load_1min": os.getloadavg()[0],
        "error": None,
    }


def _shape(target: Target, kind: str) -> str:
    if target.server == "mlflow":
        return f"mlflow-{kind}"
    return "oip" if "/v2/" in target.endpoint else "rows"


def _ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in socks]
    for s in socks:
        s.close()
    return ports


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("watchkeeper", "mlflow-skinny", "fastapi", "uvicorn", "onnxruntime", "scikit-learn")
    return {n: version(n) for n in names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="onnx,sklearn", help="onnx, sklearn or both")
    ap.add_argument("--requests", type=int, default=1500, help="timed requests, one row each")
    ap.add_argument("--batch-requests", type=int, default=600, help="timed, 100 rows each")
    ap.add_argument("--concurrency", type=int, default=8, help="connections, throughput runs")
    ap.add_argument("--database", default=None, help="postgresql://... (default: SQLite)")
    ap.add_argument("--update-docs", action="store_true")
    ap.add_argument("--plot", type=Path, default=None, help="only plot this results JSON")
    args = ap.parse_args()
    if args.plot:
        plot(json.loads(args.plot.read_text()))
        return
    console = Console()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = os.getloadavg()
    models = [m for m in args.models.split(",") if m]
    if not models or set(models) - set(KINDS):
        raise SystemExit(f"--models: expected one or more of {', '.join(KINDS)}")
    configs = [(k, 1, 1) for k in models] + [(k, 1, args.concurrency) for k in models]
    configs += [(k, 100, 1) for k in models]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="wk-serving-") as tmp:
        work = Path(tmp)
        with console.status("training and exporting the models, starting the servers"):
            paths = make_models(work)
            targets = start_servers(work, paths, _ports(4), args.database)
        try:
            with Progress(console=console) as progress:
                task = progress.add_task("measuring", total=len(configs) * len(targets))
                for kind, rows, conc in configs:
                    body = bodies(rows)
                    for t in targets:
                        progress.update(
                            task, description=f"{t.server} {kind} {rows} row(s) c={conc}"
                        )
                        n = args.requests if rows == 1 else args.batch_requests
                        result = measure(t, kind, body[_shape(t, kind)], conc, n, work)
                        runs.append({"server": t.server, "endpoint": t.endpoint, "model": kind,
                                     "rows": rows, "concurrency": conc, **result})  # fmt: skip
                        progress.advance(task)
        finally:
            for t in targets:
                for proc in {id(p): p for p in t.proc.values()}.values():
                    proc.terminate()
                    proc.wait(timeout=30)
    results = {
        "started": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "versions": _versions(),
        "store": "PostgreSQL" if args.database else "SQLite",
        "commit": _commit(),
        "features": len(FEATURES),
        "models": models,
        "runs": runs,
    }
    results["summary"] = summarise(results)
    write_outputs(results, console, update_docs=args.update_docs)


def _commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", "src"],  # the last commit of src/
            capture_output=True,
            text=True,
            cwd=BENCH.parent,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"],
            capture_output=True,
            text=True,
            cwd=BENCH.parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + (" (src/ modified)" if dirty else "")  # fmt: skip


if __name__ == "__main__":
    main()
