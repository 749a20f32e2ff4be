"""Dashboard render benchmark: server time of every page for a model with 100 features and
30 days of hourly windows, against the goal of 300 ms per page.

    python benchmarks/dashboard.py                      # SQLite state store
    python benchmarks/dashboard.py --database postgresql://postgres@127.0.0.1/wk_bench

The store is filled through the store's own tables, as the evaluator would have left it: a
model registered with a 100-feature reference (70 numeric, 30 categorical) and a segment
column with two values; per window and per segment (the two values and ``*``) a bucket
profile and ~210 metric points (drift per feature with its detail, missing share per column,
drifted share, volume, error rate, latency quantiles, labels and four performance metrics);
daily profiles beside them. Each page is then requested through the ASGI app in-process
(``TestClient``, no network), ``--repeat`` times after one warm-up request, and the median and
95th percentile of the wall time of the request are reported, with the median CPU time of
the process (which the machine's other load does not inflate as much). Results go to
``benchmarks/results/dashboard-<backend>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "bench"
N_NUM, N_CAT = 70, 30
DAYS = 30
WINDOW = 3600
SEGMENTS = ("region=eu", "region=us")
GOAL_MS = 300.0
DISTINCT_WINDOWS = 24  # distinct window profiles, cycled over the 720 windows


def feature_names() -> list[str]:
    return [f"num_{i:02d}" for i in range(N_NUM)] + [f"cat_{i:02d}" for i in range(N_CAT)]


def _table(rng: np.random.Generator, rows: int, shift: float) -> pa.Table:
    cols: dict[str, Any] = {}
    for i in range(N_NUM):
        values = rng.normal(i + shift * (i % 3), 1.0 + 0.01 * i, rows)
        cols[f"num_{i:02d}"] = pa.array(values, mask=rng.random(rows) < 0.02)
    letters = np.array(list("abcdefgh"))
    for i in range(N_CAT):
        p = np.linspace(1.0, 2.0 + shift * (i % 2), letters.size)
        cols[f"cat_{i:02d}"] = rng.choice(letters, rows, p=p / p.sum())
    cols["region"] = rng.choice(["eu", "us"], rows)
    cols["pred"] = rng.choice(["yes", "no"], rows)
    return pa.table(cols)


def fill(store: Any, settings: Any, *, days: int = DAYS, seed: int = 0) -> dict[str, Any]:
    """Register the model and write ``days`` of hourly windows ending at the current hour."""
    import sqlalchemy as sa

    from watchkeeper.ingest.service import IngestService
    from watchkeeper.profiles import DatasetProfile, profile_table
    from watchkeeper.store import tables as t

    rng = np.random.default_rng(seed)
    service = IngestService(store, settings)
    service.register(
        MODEL,
        _table(rng, 5000, 0.0),
        prediction="pred",
        segments=["region"],
        window_seconds=WINDOW,
    )
    schema, reference = store.reference(MODEL, "v1")
    profiles = []
    for k in range(DISTINCT_WINDOWS):
        part = _table(rng, 200, shift=k / DISTINCT_WINDOWS)
        profiles.append(profile_table(part, schema, reference.spec, threads=1))
    daily = profiles[0]
    for p in profiles[1:]:
        daily = daily.merge(p)
    blobs = [p.to_bytes() for p in profiles]
    daily_blob = daily.to_bytes()
    ops = {
        "count": 200,
        "errors": 2,
        "latency_counts": [0, 0, 5, 40, 120, 30, 5, 0, 0, 0, 0, 0, 0, 0],
        "latency_sum": 3.1,
        "latency_observed": 200,
    }
    names = feature_names()
    last = int(time.time()) // WINDOW * WINDOW - WINDOW  # the last closed window
    starts = [last - WINDOW * i for i in range(days * 24)][::-1]
    mp, bp, ev = [], [], []
    for w, start in enumerate(starts):
        drift = 0.03 + 0.1 * w / len(starts)
        for seg in ("*", *SEGMENTS):
            key = {"model": MODEL, "version": "v1", "segment": seg}
            points = _points(rng, names, drift)
            drifted = sum(1 for m, _, _, d in points if m == "drift_statistic" and d["drifted"])
            for metric, feature, value, detail in points:
                mp.append(
                    {
                        **key,
                        "window_start": start,
                        "window_seconds": WINDOW,
                        "metric": metric,
                        "feature": feature,
                        "value": value,
                        "detail": detail,
                    }
                )
            bp.append(
                {
                    **key,
                    "granularity": WINDOW,
                    "bucket": start,
                    "events": 200,
                    "profile": blobs[w % DISTINCT_WINDOWS],
                    "operations": ops,
                    "performance": None,
                    "dirty": False,
                }
            )
            ev.append(
                {
                    **key,
                    "window_start": start,
                    "evaluated_at": start + WINDOW + 5,
                    "summary": {
                        "drifted": drifted,
                        "checked": len(names),
                        "events": 200,
                        "labels": 150,
                    },
                }
            )
    for day in sorted({s // 86400 * 86400 for s in starts}):
        for seg in ("*", *SEGMENTS):
            bp.append(
                {
                    "model": MODEL,
                    "version": "v1",
                    "segment": seg,
                    "granularity": 86400,
                    "bucket": day,
                    "events": daily.rows,
                    "profile": daily_blob,
                    "operations": ops,
                    "performance": None,
                    "dirty": False,
                }
            )
    chunk = 20_000
    for table, rows in ((t.metric_points, mp), (t.bucket_profiles, bp), (t.evaluations, ev)):
        for i in range(0, len(rows), chunk):
            with store.write() as conn:
                conn.execute(table.insert(), rows[i : i + chunk])
    if store.engine.dialect.name == "postgresql":
        # what autovacuum does after a bulk load, done now so it does not run during timing
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    with store.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(t.metric_points)).scalar()
    assert DatasetProfile.from_bytes(blobs[0]).rows == 200
    return {"windows": len(starts), "metric_points": int(total or 0), "features": len(names)}


def _points(
    rng: np.random.Generator, names: list[str], drift: float
) -> list[tuple[str, str, float | None, Any]]:
    """The metric points of one window, in the shapes the evaluator writes."""
    out: list[tuple[str, str, float | None, Any]] = []
    stats = rng.gamma(2.0, drift / 2.0, len(names))
    drifted = 0
    for name, stat in zip(names, stats, strict=True):
        is_drift = bool(stat > 0.08)
        drifted += is_drift
        detail = {"threshold": 0.08, "drifted": is_drift, "method": "ks", "effect_size": stat}
        out.append(("drift_statistic", name, float(stat), detail))
    out.append(("prediction_drift", "pred", 0.01, {"threshold": 0.05, "drifted": False}))
    top = [names[i] for i in np.argsort(-stats)[:5]]
    share = drifted / len(names)
    out.append(
        ("drifted_share", "", share, {"drifted": drifted, "checked": len(names), "top": top})
    )
    for name in [*names, "pred"]:
        out.append(("missing_share", name, float(rng.uniform(0.0, 0.04)), None))
    out.append(("count", "", 200.0, None))
    out.append(("error_rate", "", float(rng.uniform(0, 0.02)), None))
    for q, base in (("latency_p50", 0.02), ("latency_p95", 0.05), ("latency_p99", 0.09)):
        out.append((q, "", base * float(rng.uniform(0.9, 1.1)), None))
    out.append(("labels", "", 150.0, None))
    for metric in ("accuracy", "f1", "precision", "recall"):
        out.append((metric, "", float(rng.uniform(0.7, 0.9)), None))
    return out


@contextmanager
def filled_app(database_url: str, directory: Path) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The ASGI app on a filled store; its background threads are not started."""
    from watchkeeper.server.app import create_app
    from watchkeeper.settings import load_settings

    settings = load_settings(environ={}, data_dir=str(directory), database_url=database_url)
    app = create_app(settings)
    facts = fill(app.state.store, settings)
    try:
        yield app, facts
    finally:
        app.state.store.close()


INDEX_NAME = "ix_wk_points_scope"
INDEX_COLUMNS = ("model", "version", "segment", "metric", "window_start", "feature", "value")


def create_index(store: Any) -> None:
    """The index a page's reads would like (not in the migrations yet): every read of a page
    names model, version, segment and metric, then a window range; with ``feature`` and
    ``value`` in it the series are read from the index alone."""
    import sqlalchemy as sa

    with store.write() as conn:
        conn.execute(
            sa.text(
                f"CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON wk_metric_points "
                f"({', '.join(INDEX_COLUMNS)})"
            )
        )
        conn.execute(sa.text("ANALYZE wk_metric_points"))  # SQLite and PostgreSQL alike


def pages() -> dict[str, str]:
    feature = feature_names()[0]
    cat = feature_names()[-1]
    base = f"/ui/models/{MODEL}"
    return {
        "overview": "/",
        "model, 30 days": f"{base}?range=30d",
        "model, 24 h": f"{base}?range=24h",
        "model, 30 days, one segment": f"{base}?range=30d&segment=region%3Deu",
        "model, sorted by missing": f"{base}?range=30d&sort=missing",
        "feature (numeric), 30 days": f"{base}/features/{feature}?range=30d",
        "feature (categorical), 24 h": f"{base}/features/{cat}?range=24h",
        "versions": f"{base}/versions",
        "quarantine": f"{base}/quarantine",
        "alerts": "/ui/alerts",
    }


def measure(app: Any, repeat: int) -> list[dict[str, Any]]:
    with warnings.catch_warnings():  # starlette asks for httpx2, which is not needed here
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient

    client = TestClient(app)
    rows = []
    for name, path in pages().items():
        response = client.get(path)  # warm-up: caches, first imports
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        times, cpu = [], []
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            response = client.get(path)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            assert response.status_code == 200
        times.sort()
        rows.append(
            {
                "page": name,
                "path": path,
                "median_ms": statistics.median(times),
                "p95_ms": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
                "max_ms": times[-1],
                "cpu_median_ms": statistics.median(cpu),
                "bytes": len(response.content),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="", help="PostgreSQL URL; default SQLite")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page")
    parser.add_argument(
        "--index",
        action="store_true",
        help=f"first create the metric-point index proposed in docs/dashboard.md ({INDEX_NAME})",
    )
    args = parser.parse_args(argv)
    console = Console()
    backend = "postgresql" if args.database.startswith("postgresql") else "sqlite"
    label = f"{backend}-index" if args.index else backend
    with tempfile.TemporaryDirectory(prefix="wk-dash-bench-") as tmp:
        t0 = time.perf_counter()
        with filled_app(args.database, Path(tmp)) as (app, facts):
            fill_s = time.perf_counter() - t0
            console.print(
                f"filled {backend}: {facts['windows']} windows × 3 segments, "
                f"{facts['metric_points']:,} metric points, {facts['features']} features "
                f"in {fill_s:.0f} s"
            )
            if args.index:
                create_index(app.state.store)
            load = os.getloadavg()[0]  # other work on the machine inflates wall times
            rows = measure(app, args.repeat)
    table = Table(title=f"dashboard server time per page ({label}, {args.repeat} requests)")
    for col in ("page", "median ms", "p95 ms", "max ms", "CPU ms", "KiB", "goal"):
        table.add_column(col, justify="left" if col == "page" else "right")
    for r in rows:
        ok = r["p95_ms"] < GOAL_MS
        table.add_row(
            r["page"],
            f"{r['median_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
            f"{r['max_ms']:.1f}",
            f"{r['cpu_median_ms']:.1f}",
            f"{r['bytes'] / 1024:.0f}",
            "[green]met[/]" if ok else "[red]missed[/]",
        )
    console.print(table)
    result = {
        "backend": backend,
        "index": INDEX_COLUMNS if args.index else None,
        "repeat": args.repeat,
        "goal_ms": GOAL_MS,
        "data": facts,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1m": load,
        },
        "pages": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"dashboard-{label}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Dashboard render time ({label})",
        "",
        f"{facts['windows']} hourly windows × 3 segments, {facts['features']} features, "
        f"{facts['metric_points']:,} metric points; {args.repeat} requests per page after one "
        f"warm-up, in-process ASGI (no network); {os.cpu_count()} CPUs, load average "
        f"{load:.1f} when timing started.",
        "",
        "| page | median ms | p95 ms | max ms | CPU ms (median) | KiB |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {r['page']} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | {r['max_ms']:.1f} "
            f"| {r['cpu_median_ms']:.1f} | {r['bytes'] / 1024:.0f} |"
            for r in rows
        ),
        "",
    ]
    (RESULTS / f"dashboard-{label}.md").write_text("\n".join(lines))
    return 0 if all(r["p95_ms"] < GOAL_MS for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
