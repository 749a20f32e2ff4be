"""The data of the chunked benchmark (``benchmarks/analyze.py``), written once, untimed.

Three kinds of data, all Parquet under ``benchmarks/.cache/analyze/``:

* **NannyML's synthetic datasets** (``car_loan``, ``binary``, ``multiclass``, ``car_price``):
  they ship in the nannyml wheel (CSV files inside the package), so they are exported by the
  nannyml venv's interpreter (``peers/export_nannyml.py``): the model inputs of the reference
  and of the analysis period, nothing else.
* **A generated set of 10 million rows** (``generated``): 1,000,000 reference rows and
  10,000,000 analysis rows, 8 numeric and 2 categorical columns, analysed in 100 chunks of
  100,000 (so that NannyML's thresholds have ten reference chunks to come from). The second
  half (chunks 50-99) is shifted in three columns (:data:`GENERATED_SHIFTS`); every other
  cell is drawn like the reference, so the ground truth is exact.
* **Controlled shifts on NannyML's reference rows** (``shifts_<dataset>_seed<s>``), for the
  small-chunk detection rates. The reference rows of a dataset, shuffled with the seed, are
  split: the last 20,000 become 20 analysis chunks of 1,000 rows, the rest the reference. In
  chunks 0-9 nothing is changed. In chunks 10-19 every numeric column gets one shift, its kind
  cycling with the chunk and the column (:func:`shift_numeric`): *location* (+0.2 standard
  deviations), *scale* (×1.25 about the median, the median kept) or *tail* (values above the
  90th percentile moved out twice as far from it). A shift that would move fewer than 5 % of
  the chunk's values (a tail shift of a discrete column whose 90th percentile is its maximum)
  is not applied, and the cell stays clean. In chunks 15-19 every categorical column
  also gets a *frequency* shift: 10 % of its rows move to its least frequent category. A
  (chunk, column) cell is **drifted** exactly when it was shifted; every other cell is
  **clean**: a flag on it is a false alarm.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import tools

ROOT = tools.BENCH_DIR / ".cache" / "analyze"
NANNYML_SETS = ("car_loan", "binary", "multiclass", "car_price")
SMALL_CHUNK = 1_000
HELD_OUT_CHUNKS, CLEAN_CHUNKS, CATEGORICAL_FROM = 20, 10, 15
KINDS = ("location", "scale", "tail")
MIN_MOVED = 0.05  # a shift that moves fewer values is not applied: the cell stays clean
GENERATED_SHIFTS = {
    "normal": "location: mean + 0.01 sd",
    "lognormal": "scale: x 1.02 about the median",
    "cat_5": "frequency: 1 point from the first category to the second",
}
GENERATED_BLOCK = 1_000_000  # rows written at a time; blocks 5-9 are shifted
GENERATED_CHUNK = 100_000  # the chunk size analysed: the reference is ten such chunks


def export_nannyml() -> dict[str, Any]:
    """Export NannyML's datasets with its own interpreter (once); return their summary."""
    marker = ROOT / "nannyml.json"
    if not marker.exists():
        python = tools.interpreter(tools.get_tool("nannyml"))
        if python is None:
            raise SystemExit("the nannyml venv is missing: run `bash benchmarks/setup_peers.sh`")
        proc = subprocess.run(
            [str(python), str(tools.PEERS_DIR / "export_nannyml.py"), str(ROOT)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **tools.TELEMETRY_OFF},
        )
        ROOT.mkdir(parents=True, exist_ok=True)
        marker.write_text(proc.stdout.strip().splitlines()[-1])
    summary: dict[str, Any] = json.loads(marker.read_text())
    return summary


def shift_numeric(values: np.ndarray, kind: str, ref: np.ndarray) -> np.ndarray:
    """One documented shift of a numeric chunk; sizes are taken from the reference ``ref``."""
    x = values.astype(np.float64)
    if kind == "location":
        return x + 0.2 * float(np.nanstd(ref))
    if kind == "scale":
        median = float(np.nanmedian(ref))
        return median + 1.25 * (x - median)
    q90 = float(np.nanquantile(ref, 0.9))
    return np.where(x > q90, q90 + 2.0 * (x - q90), x)


def _shift_categorical(values: pd.Series, rng: np.random.Generator, ref: pd.Series) -> pd.Series:
    rare = ref.value_counts().index[-1]
    out = values.astype(object).copy()
    moved = rng.random(len(out)) < 0.10
    out[moved] = rare
    return out


def controlled(dataset: str, seed: int) -> tuple[Path, Path, list[list[Any]]]:
    """The controlled-shift set of ``dataset`` for ``seed``: (reference, analysis, drifted
    cells as [chunk, column])."""
    out = ROOT / f"shifts_{dataset}_seed{seed}"
    ref_path, cur_path, truth_path = (
        out / "reference.parquet",
        out / "analysis.parquet",
        out / "truth.json",
    )
    if truth_path.exists():
        return ref_path, cur_path, json.loads(truth_path.read_text())
    frame = pd.read_parquet(ROOT / dataset / "reference.parquet")
    rng = np.random.default_rng([seed, NANNYML_SETS.index(dataset)])
    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    frame = frame.astype({c: np.float64 for c in numeric})  # shifted values are not integers
    held = HELD_OUT_CHUNKS * SMALL_CHUNK
    ref, cur = frame.iloc[:-held].reset_index(drop=True), frame.iloc[-held:].copy()
    cur = cur.reset_index(drop=True)
    truth: list[list[Any]] = []
    for chunk in range(CLEAN_CHUNKS, HELD_OUT_CHUNKS):
        rows = slice(chunk * SMALL_CHUNK, (chunk + 1) * SMALL_CHUNK)
        for j, col in enumerate(cur.columns):
            if col in numeric:
                kind = KINDS[(chunk + j) % len(KINDS)]
                block = cur.loc[rows.start : rows.stop - 1, col].to_numpy()
                shifted = shift_numeric(block, kind, ref[col].to_numpy())
                if np.mean(shifted != block) < MIN_MOVED:
                    continue  # a tail shift of a column whose top values are its maximum
                cur.loc[rows.start : rows.stop - 1, col] = shifted
                truth.append([chunk, col, kind])
            elif chunk >= CATEGORICAL_FROM:
                block = cur.loc[rows.start : rows.stop - 1, col]
                cur.loc[rows.start : rows.stop - 1, col] = _shift_categorical(block, rng, ref[col])
                truth.append([chunk, col, "frequency"])
    out.mkdir(parents=True, exist_ok=True)
    ref.to_parquet(ref_path, index=False)
    cur.to_parquet(cur_path, index=False)
    truth_path.write_text(json.dumps(truth))
    return ref_path, cur_path, truth


def _generated_frame(rows: int, rng: np.random.Generator, shifted: bool) -> pa.Table:
    cols: dict[str, Any] = {
        "normal": rng.normal(0.0, 1.0, rows),
        "lognormal": rng.lognormal(0.0, 0.75, rows),
        "uniform": rng.uniform(0.0, 1.0, rows),
        "student_t": rng.standard_t(3, rows),
        "bimodal": np.where(
            rng.random(rows) < 0.5, rng.normal(-2, 1, rows), rng.normal(2, 0.7, rows)
        ),
        "exponential": rng.exponential(2.0, rows),
        "int_poisson": rng.poisson(300.0, rows).astype(np.float64),
        "normal_wide": rng.normal(1e6, 1e4, rows),
    }
    probs5 = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
    probs20 = 1 / np.arange(1, 21) ** 1.2
    probs20 /= probs20.sum()
    if shifted:
        cols["normal"] = cols["normal"] + 0.01
        median = float(np.exp(0.0))
        cols["lognormal"] = median + 1.02 * (cols["lognormal"] - median)
        probs5 = probs5 + np.array([-0.01, 0.01, 0, 0, 0])
    for name, probs in (("cat_5", probs5), ("cat_20", probs20)):
        codes = rng.choice(len(probs), size=rows, p=probs).astype(np.int32)
        labels = pa.array([f"{name}_v{i:02d}" for i in range(len(probs))])
        cols[name] = pa.DictionaryArray.from_arrays(pa.array(codes), labels)
    return pa.table(cols)


def generated(reference_rows: int = 1_000_000, blocks: int = 10) -> tuple[Path, Path]:
    """The generated set: ``blocks`` analysis blocks of GENERATED_BLOCK rows, the second
    half shifted in the columns of GENERATED_SHIFTS."""
    out = ROOT / f"generated_{blocks}x{GENERATED_BLOCK}"
    ref_path, cur_path = out / "reference.parquet", out / "analysis.parquet"
    if cur_path.exists():
        return ref_path, cur_path
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(_generated_frame(reference_rows, np.random.default_rng(0), False), ref_path)
    with pq.ParquetWriter(
        cur_path.with_suffix(".tmp"), _generated_frame(1, np.random.default_rng(0), False).schema
    ) as writer:
        for i in range(blocks):
            frame = _generated_frame(
                GENERATED_BLOCK, np.random.default_rng([1, i]), i >= blocks // 2
            )
            writer.write_table(frame)
    cur_path.with_suffix(".tmp").replace(cur_path)
    return ref_path, cur_path


def generated_truth(blocks: int = 10) -> list[list[Any]]:
    """The drifted cells of the generated set, in chunks of GENERATED_CHUNK rows."""
    chunks = blocks * GENERATED_BLOCK // GENERATED_CHUNK
    return [
        [i, col, kind] for i in range(chunks // 2, chunks) for col, kind in GENERATED_SHIFTS.items()
    ]
