"""``ref.analyze`` over a Parquet dataset larger than memory: peak RSS and rows/s.

    python benchmarks/analyze_stream.py                      # 50 million rows (about 2 GB)
    python benchmarks/analyze_stream.py --rows 2000000       # a quick look
    python benchmarks/analyze_stream.py --modes size,period  # leave out the unordered periods

Generates a seeded Parquet dataset of ``--rows`` rows in files of ``--piece-rows`` rows (one
piece in memory at a time) in a temporary directory, removed at the end: a time-ordered
timestamp ``ts`` over ``--days`` days, an unordered one ``event_ts`` (uniform over the same
days), three numeric columns (``x1`` shifts by 0.3σ over the last fifth of the rows, ``x3`` has
5 % missing values), an integer and a categorical column (8 values). The reference: 200,000
rows of the same generator, without the shift. Each mode then runs in a child process of its
own — ``Reference.fit`` on the reference file, then ``ref.analyze(directory, ...)``:

* ``size``: ``chunk_size=--chunk-size`` (one pass);
* ``period``: ``chunk_period="1D"`` on ``ts`` (a pass over the timestamps, then one over the
  rows, each day cut as it ends);
* ``period-unordered``: ``chunk_period="1D"`` on ``event_ts`` (the rows spilled to disk by day,
  then read back one day at a time).

Per mode: the child's peak RSS (``VmHWM``) after the fit and after the analysis, the analysis's
wall time and rows/s, the chunks, and the chunks where ``x1`` drifted (the shift is in the last
fifth). The goal: peak RSS under 1 GB. A rich progress bar shows each step on a terminal.
Writes benchmarks/results/analyze-stream.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

RESULTS = Path(__file__).parent / "results"
FEATURES = ["x1", "x2", "x3", "k", "c"]
CATEGORIES = pa.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"])
T0 = np.datetime64("2025-01-01T00:00:00", "us")
DAY_US = 86_400_000_000
MODES = {
    "size": ("ts", {"chunk_size": None}),
    "period": ("ts", {"chunk_period": "1D"}),
    "period-unordered": ("event_ts", {"chunk_period": "1D"}),
}


def piece(rng: np.random.Generator, first: int, rows: int, total: int, days: int) -> pa.Table:
    """Rows ``first:first + rows`` of the ``total`` (the positions place ``ts`` and the shift)."""
    pos = np.arange(first, first + rows, dtype=np.int64)
    ts = T0 + (pos * (days * DAY_US / total)).astype(np.int64).astype("timedelta64[us]")
    event_ts = T0 + rng.integers(0, days * DAY_US, rows).astype("timedelta64[us]")
    x3 = rng.normal(10, 3, rows)
    x3[rng.random(rows) < 0.05] = np.nan
    return pa.table(
        {
            "ts": pa.array(ts),
            "event_ts": pa.array(event_ts),
            "x1": rng.normal(np.where(pos >= 0.8 * total, 0.3, 0.0), 1.0),
            "x2": rng.exponential(1.0, rows),
            "x3": x3,
            "k": rng.integers(0, 20, rows),
            "c": CATEGORIES.take(
                pa.array(rng.choice(8, rows, p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05]))
            ),
        }
    )


def bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )


def generate(root: Path, rows: int, piece_rows: int, days: int) -> int:
    """The dataset, a file per piece; its size in bytes."""
    data = root / "events"
    data.mkdir()
    rng = np.random.default_rng(0)
    with bar() as progress:
        task = progress.add_task("generating rows", total=rows)
        for i, first in enumerate(range(0, rows, piece_rows)):
            n = min(piece_rows, rows - first)
            pq.write_table(piece(rng, first, n, rows, days), data / f"part-{i:05d}.parquet")
            progress.advance(task, n)
    reference = piece(np.random.default_rng(1), 0, 200_000, 10**12, days)  # no shift
    pq.write_table(reference, root / "reference.parquet")
    return sum(p.stat().st_size for p in data.iterdir())


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(root: Path, mode: str, chunk_size: int) -> dict[str, Any]:
    """One mode, in this (child) process: the figures as a dict."""
    import watchkeeper

    stamp, chunking = MODES[mode]
    chunking = {k: chunk_size if v is None else v for k, v in chunking.items()}
    ref = watchkeeper.Reference.fit(root / "reference.parquet", timestamp=stamp, columns=FEATURES)
    fitted_mb = vm_hwm_mb()
    start = time.perf_counter()
    timeline = ref.analyze(root / "events", progress=True, **chunking)
    seconds = time.perf_counter() - start
    rows = sum(c.rows for c in timeline.chunks)
    return {
        "mode": mode,
        "chunking": chunking,
        "rows": rows,
        "chunks": len(timeline),
        "x1_drifted_chunks": sum(r.drift["x1"].drifted for r in timeline.reports),
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mb_after_fit": round(fitted_mb),
        "peak_rss_mb": round(vm_hwm_mb()),
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Streaming analysis",
        "",
        f"{result['rows']:,} rows in {result['files']} Parquet files "
        f"({result['dataset_mb']:,} MB on disk), {result['started']}, {result['machine']}.",
        "",
        "| mode | chunks | x1 drifted in | time | rows/s | peak RSS after fit | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["modes"]:
        how = ", ".join(f"{k}={v!r}" for k, v in r["chunking"].items())
        lines.append(
            f"| {r['mode']} ({how}) | {r['chunks']} | {r['x1_drifted_chunks']} | "
            f"{r['seconds']} s | {r['rows_per_s']:,} | {r['peak_rss_mb_after_fit']} MB | "
            f"{r['peak_rss_mb']} MB |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--piece-rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=50)
    parser.add_argument("--chunk-size", type=int, default=500_000)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.root, args.child, args.chunk_size)))
        return
    modes = args.modes.split(",")
    unknown = set(modes) - MODES.keys()
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; use {', '.join(MODES)}")
    root = Path(tempfile.mkdtemp(prefix="watchkeeper-stream-bench-"))
    try:
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        size = generate(root, args.rows, args.piece_rows, args.days)
        result: dict[str, Any] = {
            "rows": args.rows,
            "files": len(list((root / "events").iterdir())),
            "dataset_mb": round(size / 2**20),
            "started": started,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}",
            "modes": [],
        }
        for mode in modes:
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--root", str(root),
                 "--chunk-size", str(args.chunk_size)],
                stdout=subprocess.PIPE, text=True, check=True,
            )  # fmt: skip
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps(figures))
            result["modes"].append(figures)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "analyze-stream.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "analyze-stream.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
