"""Multivariate drift against NannyML: watchkeeper's PCA reconstruction error and domain
classifier next to NannyML's ``DataReconstructionDriftCalculator`` and
``DomainClassifierCalculator``, on the same chunks, in one run.

Two kinds of data:

* **NannyML's synthetic datasets** (car loan, binary, multiclass, car price): they ship in its
  wheel and are exported by its own interpreter, untimed (``peers/export_nannyml.py``, shared
  with ``benchmarks/analyze.py``): the model inputs of the reference and of the analysis
  period, in chunks of 5,000 rows. No per-chunk ground truth (NannyML's documentation puts
  their drift in the second half), so the table counts flagged chunks per half.
* **Generated data with known ground truth** (:func:`generated`): 8 features, a 20,000-row
  reference, then ``--clean`` unshifted chunks of 1,000 rows and 5 chunks of each injected joint
  shift: a **correlation flip** (``a`` and ``b`` from +0.8 to -0.8, marginals unchanged), a
  **rotation** (the ``c``/``d`` plane turned by 30 degrees) and a **mixture change** (30 % of
  ``f``/``g``'s rows from the two clusters off the diagonal, marginals unchanged).

Every tool runs in a fresh interpreter of its own (watchkeeper in this one's, NannyML in its
venv, ``bash benchmarks/setup_peers.sh nannyml``), with telemetry off; the Parquet files are
read before the timer. The timer covers the fit on the reference and the decision on every
chunk: watchkeeper's ``fit_multivariate`` + ``multivariate_drift`` per chunk (the library's
calls under ``compare(..., multivariate=...)`` and ``Reference.analyze``; ``false_alarm_rate``
0.01, the chunk's index as its seed), NannyML's ``fit`` + ``calculate`` with ``chunk_size``.
Reported: wall and CPU seconds (every thread), the most threads, both as multiples of
watchkeeper's, and the chunks flagged.

    python benchmarks/multivariate.py [--clean 40] [--datasets car_loan,binary,...]
        [--methods pca,classifier] [--dataset-methods pca] [--out results/multivariate]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import analyze_data as ad
import tools

ALPHA = 0.01  # watchkeeper's stated false-alarm rate per chunk
NANNYML_CHUNK = 5_000
GENERATED_CHUNK = 1_000
GENERATED_REFERENCE = 20_000
SHIFTED_CHUNKS = 5  # per kind
SHIFTS = ("correlation flip", "rotation", "mixture change")
PEER = {"pca": "DataReconstructionDriftCalculator", "classifier": "DomainClassifierCalculator"}

# Each worker prints one JSON line: seconds, cpu_seconds, threads, flagged (chunk indices).
WATCHKEEPER = """
import gc, json, sys, time
sys.path.insert(0, sys.argv[5])
import _harness as h
import pyarrow.parquet as pq
from watchkeeper.multivariate import fit_multivariate, multivariate_drift
from watchkeeper.schema import infer_schema
ref, ana = pq.read_table(sys.argv[1]), pq.read_table(sys.argv[2])
size, method, alpha = int(sys.argv[3]), sys.argv[4], float(sys.argv[6])
import sklearn.ensemble  # imported before the timer, as NannyML's imports are
gc.collect()
with h.ThreadCount() as counted:
    start, cpu = time.perf_counter(), time.process_time()
    fit = fit_multivariate(ref, infer_schema(ref), 0)
    flagged, values = [], []
    for i, lo in enumerate(range(0, ana.num_rows, size)):
        res = multivariate_drift(fit, ref, ana.slice(lo, size), (method,), alpha, i).results[method]
        values.append(res.statistic)
        if res.drifted:
            flagged.append(i)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "threads": counted.most,
                  "flagged": flagged, "chunks": i + 1, "values": values,
                  "columns": fit.columns}))
"""

NANNYML = """
import gc, json, sys, time, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, sys.argv[5])
import _harness as h
import pandas as pd
import nannyml as nml
ref, ana = h.read_pandas(sys.argv[1]), h.read_pandas(sys.argv[2])
size, method = int(sys.argv[3]), sys.argv[4]
cols = list(ref.columns)
gc.collect()
with h.ThreadCount() as counted:
    start, cpu = time.perf_counter(), time.process_time()
    if method == "pca":
        calc = nml.DataReconstructionDriftCalculator(column_names=cols, chunk_size=size)
    else:
        calc = nml.DomainClassifierCalculator(feature_column_names=cols, chunk_size=size)
    calc.fit(ref)
    table = calc.calculate(ana).filter(period="analysis").to_df()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
alert = [c for c in table.columns if c[-1] == "alert"][0]
value = [c for c in table.columns if c[-1] == "value"][0]
flags = table[alert].fillna(False).astype(bool).tolist()
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "threads": counted.most,
                  "flagged": [i for i, f in enumerate(flags) if f], "chunks": len(flags),
                  "values": table[value].tolist(), "version": nml.__version__}))
"""


def _pair(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    return rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], n)


def _rows(rng: np.random.Generator, n: int, shift: str | None) -> pd.DataFrame:
    """One block of the generated data; ``shift`` one of :data:`SHIFTS` or None."""
    ab = _pair(rng, n, -0.8 if shift == "correlation flip" else 0.8)
    cd = np.column_stack([rng.normal(0, 1.5, n), rng.normal(0, 0.5, n)])
    if shift == "rotation":
        t = np.deg2rad(30.0)
        cd = cd @ np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    e = 0.6 * cd[:, 0] + rng.normal(0, 0.8, n)  # tied to c: the PCA has a direction to keep
    # f, g: two clusters on the diagonal, (2, 2) and (-2, -2); a mixture change draws 30 % of
    # the rows from the anti-diagonal ones, (2, -2) and (-2, 2): each marginal stays ±2.
    sign_f = rng.choice([-1.0, 1.0], n)
    off = rng.uniform(size=n) < (0.3 if shift == "mixture change" else 0.0)
    sign_g = np.where(off, -sign_f, sign_f)
    return pd.DataFrame(
        {
            "a": ab[:, 0],
            "b": ab[:, 1],
            "c": cd[:, 0],
            "d": cd[:, 1],
            "e": e,
            "f": 2 * sign_f + rng.normal(0, 0.7, n),
            "g": 2 * sign_g + rng.normal(0, 0.7, n),
            "segment": rng.choice(["retail", "online", "partner"], n, p=[0.5, 0.3, 0.2]),
        }
    )


def generated(clean: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[str | None]]:
    """The reference, the analysis period and each chunk's truth (its shift, or None)."""
    rng = np.random.default_rng(seed)
    truth: list[str | None] = [None] * clean + [s for s in SHIFTS for _ in range(SHIFTED_CHUNKS)]
    order = rng.permutation(len(truth))  # shifted chunks scattered among the clean ones
    truth = [truth[i] for i in order]
    ref = _rows(rng, GENERATED_REFERENCE, None)
    ana = pd.concat([_rows(rng, GENERATED_CHUNK, s) for s in truth], ignore_index=True)
    return ref, ana, truth


def _run(tool: str, ref: Path, ana: Path, size: int, method: str) -> dict[str, Any]:
    if tool == "watchkeeper":
        python: Path | None = Path(sys.executable)
        code, env = WATCHKEEPER, {**os.environ, **tools.TELEMETRY_OFF}
    else:
        python = tools.interpreter(tools.get_tool("nannyml"))
        code, env = NANNYML, {**tools.TELEMETRY_OFF, "PATH": "/usr/bin:/bin"}
    if python is None:
        return {"error": "the nannyml venv is missing (bash benchmarks/setup_peers.sh nannyml)"}
    argv = [
        str(python),
        "-c",
        code,
        str(ref),
        str(ana),
        str(size),
        method,
        str(tools.PEERS_DIR),
        str(ALPHA),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _pairs(
    name: str, ref: Path, ana: Path, size: int, methods: list[str], truth: list[str | None] | None
) -> list[dict[str, Any]]:
    rows = []
    for method in methods:
        for tool in ("watchkeeper", "nannyml"):
            res = _run(tool, ref, ana, size, method)
            res.update(data=name, method=method, tool=tool, chunk_size=size)
            if truth is not None and "flagged" in res:
                flagged = set(res["flagged"])
                res["found"] = {
                    s: sum(1 for i, t in enumerate(truth) if t == s and i in flagged)
                    for s in SHIFTS
                }
                clean = [i for i, t in enumerate(truth) if t is None]
                res["false_alarms"] = sum(1 for i in clean if i in flagged)
                res["clean"] = len(clean)
            print(json.dumps({k: v for k, v in res.items() if k != "values"}), file=sys.stderr)
            rows.append(res)
    return rows


def _cell(row: dict[str, Any], truth: list[str | None] | None) -> str:
    if "error" in row:
        return "error: " + row["error"][:120]
    if truth is None:
        half = row["chunks"] // 2
        first = sum(1 for i in row["flagged"] if i < half)
        return f"{first} / {len(row['flagged']) - first} of {half} / {row['chunks'] - half}"
    found = sum(row["found"].values())
    each = ", ".join(f"{row['found'][s]}" for s in SHIFTS)
    return (
        f"{found}/{len(SHIFTS) * SHIFTED_CHUNKS} ({each}); "
        f"{row['false_alarms']}/{row['clean']} false alarms"
    )


def table(rows: list[dict[str, Any]], truths: dict[str, list[str | None] | None]) -> str:
    lines = [
        "| data | chunks | method | tool | seconds | CPU s | threads "
        "| x watchkeeper (wall / CPU) | chunks flagged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["data"], row["method"])
        if row["tool"] == "watchkeeper":
            base[key] = row
        wk = base.get(key, {})
        if "error" in row or "seconds" not in wk:
            ratio, secs = "-", "-"
        else:
            ratio = (
                f"{row['seconds'] / wk['seconds']:.1f}x / "
                f"{row['cpu_seconds'] / max(wk['cpu_seconds'], 1e-9):.1f}x"
            )
            secs = f"{row['seconds']:.2f} | {row['cpu_seconds']:.2f} | {row['threads']}"
        chunks = f"{row.get('chunks', '?')} x {row['chunk_size']:,}"
        name = "watchkeeper" if row["tool"] == "watchkeeper" else f"nannyml {PEER[row['method']]}"
        if secs == "-":
            secs = "- | - | -"
        lines.append(
            f"| {row['data']} | {chunks} | {row['method']} | {name} | {secs} | {ratio} "
            f"| {_cell(row, truths[row['data']])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=int, default=40, help="unshifted generated chunks")
    parser.add_argument("--datasets", default=",".join(ad.NANNYML_SETS))
    parser.add_argument("--methods", default="pca,classifier")
    parser.add_argument(
        "--dataset-methods",
        default="pca",
        help="methods on NannyML's datasets (its domain classifier takes minutes per dataset)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    datasets = [d for d in args.datasets.split(",") if d]
    load = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    truths: dict[str, list[str | None] | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ref, ana, truth = generated(args.clean)
        paths = Path(tmp) / "reference.parquet", Path(tmp) / "analysis.parquet"
        ref.to_parquet(paths[0], index=False)
        ana.to_parquet(paths[1], index=False)
        truths["generated"] = truth
        rows += _pairs("generated", *paths, GENERATED_CHUNK, methods, truth)
    if datasets:
        summary = ad.export_nannyml()
        for name in datasets:
            folder = ad.ROOT / name
            truths[name] = None
            rows += _pairs(
                name,
                folder / "reference.parquet",
                folder / "analysis.parquet",
                NANNYML_CHUNK,
                [m for m in args.dataset_methods.split(",") if m],
                None,
            )
    version = next((r["version"] for r in rows if "version" in r), "not run")
    if datasets:
        version += f" (datasets of nannyml {summary['nannyml']})"
    head = (
        f"nannyml {version}; {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"1-min load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end. "
        f"Generated: reference {GENERATED_REFERENCE:,} rows, {args.clean} unshifted chunks and "
        f"{SHIFTED_CHUNKS} of each shift ({', '.join(SHIFTS)}; found per shift in that order)."
    )
    text = head + "\n\n" + table(rows, truths)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
        args.out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
