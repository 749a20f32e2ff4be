"""Profiling throughput on Spark: rows/s of ``watchkeeper.spark.profile`` on Spark in local
mode, of the local profiler on the same rows, and of whylogs' Spark integration when it is
installed in its venv (``benchmarks/.venvs/whylogs-spark``: ``bash benchmarks/setup_peers.sh
whylogs-spark``).

    python benchmarks/spark.py                           # 1,000,000 rows, one run
    python benchmarks/spark.py --rows 200000 --update-docs

The rows (numeric and categorical columns, a few nulls) are written once to a Parquet file;
every contender reads that file (Spark: ``spark.read.parquet``; the local profiler:
``pyarrow.parquet.read_table`` before the timer). Spark runs ``local[N]`` (N: the machine's
cores), the UI off; each Spark measurement is the second of two runs (the first starts the
Python workers). The reference's spec is frozen from the first 100,000 rows.

Writes benchmarks/results/spark.json and spark.md; ``--update-docs`` copies the table into
docs/spark.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

import watchkeeper
from docs_section import replace_section
from watchkeeper.io import to_table

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
DOC = BENCH_DIR.parent / "docs" / "spark.md"
# the peers' venvs: WATCHKEEPER_BENCH_VENVS points a worktree at another checkout's (tools.py)
VENVS = Path(os.environ.get("WATCHKEEPER_BENCH_VENVS") or BENCH_DIR / ".venvs")
WHYLOGS = VENVS / "whylogs-spark" / "bin" / "python"
NUMERIC, CATEGORICAL = 8, 2
console = Console(stderr=True)


def make_rows(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for i in range(NUMERIC):
        values = rng.normal(i, 1 + i / 4, rows)
        cols[f"x{i}"] = pa.array(values, mask=rng.random(rows) < 0.01)
    for i in range(CATEGORICAL):
        labels = np.array([f"c{j}" for j in range(20 * (i + 1))])
        cols[f"c{i}"] = pa.array(labels[rng.integers(0, labels.size, rows)].tolist())
    return pa.table(cols)


def spark_session(cores: int) -> Any:
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("watchkeeper-benchmark")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(cores))
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def arrow_floor(sdf: Any) -> int:
    """What Spark costs before any profiling: the same columns through ``mapInArrow``, each
    partition only counting its rows."""

    def count(batches: Any) -> Any:
        yield pa.RecordBatch.from_pydict({"n": [sum(b.num_rows for b in batches)]})

    return int(sum(r["n"] for r in sdf.mapInArrow(count, "n long").collect()))


def timed(step: Any) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    return time.perf_counter() - wall, time.process_time() - cpu, result


WHYLOGS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time, warnings
    warnings.simplefilter("ignore")
    os.environ["WHYLOGS_NO_ANALYTICS"] = "True"
    path, cores = sys.argv[1], int(sys.argv[2])
    from pyspark.sql import SparkSession
    from whylogs.api.pyspark.experimental import collect_dataset_profile_view
    spark = (SparkSession.builder.master(f"local[{cores}]").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", str(cores))
             .config("spark.driver.memory", "2g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    sdf = spark.read.parquet(path)
    times = []
    for _ in range(2):
        t = time.perf_counter()
        view = collect_dataset_profile_view(input_df=sdf)
        times.append(time.perf_counter() - t)
    import pyspark, whylogs
    print(json.dumps({"seconds": times[-1], "columns": len(view.get_columns()),
                      "version": whylogs.__version__, "pyspark": pyspark.__version__}))
    spark.stop()
    """
)


def run_whylogs(path: Path, cores: int, python: Path) -> dict[str, Any]:
    if not python.exists():
        return {"note": "not installed (bash benchmarks/setup_peers.sh whylogs-spark)"}
    env = {**os.environ, "PYSPARK_PYTHON": str(python), "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [str(python), "-c", WHYLOGS_SCRIPT, str(path), str(cores)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"note": f"failed: {tail[0][:160]}"}
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--update-docs", action="store_true")
    parser.add_argument(
        "--whylogs-python",
        type=Path,
        default=WHYLOGS,
        help="a venv's python with whylogs[spark] (default: benchmarks/.venvs/whylogs-spark)",
    )
    args = parser.parse_args()
    from watchkeeper import spark as wk_spark

    load_start = os.getloadavg()[0]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.parquet"
        with console.status(f"writing {args.rows:,} rows"):
            table = make_rows(args.rows)
            pq.write_table(table, path, row_group_size=max(args.rows // (4 * args.cores), 10_000))
            ref = watchkeeper.profile(table.slice(0, min(100_000, args.rows)))
            del table
        with console.status("the local profiler"):
            rows = to_table(pq.read_table(path), dictionary_strings=True)
            wall, cpu, _ = timed(lambda: watchkeeper.profile_table(rows, ref.schema, ref.spec))
            results.append({"tool": "watchkeeper, local profiler", "seconds": wall, "cpu": cpu})
        with console.status(f"Spark local[{args.cores}]: starting"):
            started, _, spark = timed(lambda: spark_session(args.cores))
            sdf = spark.read.parquet(str(path))
            partitions = sdf.rdd.getNumPartitions()
        with console.status("Spark's floor: mapInArrow counting rows (two runs)"):
            timed(lambda: arrow_floor(sdf))
            wall, _, counted = timed(lambda: arrow_floor(sdf))
            assert counted == args.rows
            results.append(
                {
                    "tool": f"floor: Spark mapInArrow counting rows, local[{args.cores}]",
                    "seconds": wall,
                    "cpu": None,
                    "note": "Parquet read, Arrow to Python and back; no profiling",
                }
            )
        with console.status("watchkeeper.spark.profile (two runs)"):
            timed(lambda: wk_spark.profile(sdf, ref))
            wall, cpu, prof = timed(lambda: wk_spark.profile(sdf, ref))
            assert prof.rows == args.rows
            results.append(
                {
                    "tool": f"watchkeeper.spark, local[{args.cores}], {partitions} partitions",
                    "seconds": wall,
                    "cpu": None,
                }
            )
        spark.stop()
        with console.status("whylogs' Spark integration (its venv, two runs)"):
            why = run_whylogs(path, args.cores, args.whylogs_python)
        label = f"whylogs {why.get('version', '?')} collect_dataset_profile_view"
        results.append(
            {
                "tool": f"{label}, local[{args.cores}]",
                "seconds": why.get("seconds"),
                "cpu": None,
                "note": why.get("note", f"pyspark {why.get('pyspark', '?')}"),
            }
        )
    for r in results:
        r["rows_per_s"] = args.rows / r["seconds"] if r.get("seconds") else None
    meta = {
        "generated": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "rows": args.rows,
        "columns": NUMERIC + CATEGORICAL,
        "cores": args.cores,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "spark_start_seconds": started,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
        ).stdout.strip(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "spark.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    md = markdown(meta, results)
    (RESULTS / "spark.md").write_text(md)
    print(md)
    if args.update_docs:
        replace_section(DOC, "<!-- spark-benchmark -->", "<!-- /spark-benchmark -->", md)


def markdown(meta: dict[str, Any], results: list[dict[str, Any]]) -> str:
    lines = [
        "# Spark profiling benchmark",
        "",
        f"Generated {meta['generated']} by `python benchmarks/spark.py` at {meta['git']}: "
        f"{meta['rows']:,} rows x {meta['columns']} columns (8 numeric with 1 % nulls, 2 "
        f"categorical), {meta['cpus']} CPUs, Python {meta['python']}; Spark started in "
        f"{meta['spark_start_seconds']:.1f} s (not counted). 1-min load average "
        f"{meta['load_start']:.2f} at start, {meta['load_end']:.2f} at end: the machine is "
        "shared, so read the ratios rather than the absolute figures.",
        "",
        "| profiler | seconds | rows/s | note |",
        "|---|---|---|---|",
    ]
    for r in results:
        secs = "-" if r.get("seconds") is None else f"{r['seconds']:.2f}"
        rate = "-" if r.get("rows_per_s") is None else f"{r['rows_per_s']:,.0f}"
        lines.append(f"| {r['tool']} | {secs} | {rate} | {r.get('note', '')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR))
    main()
