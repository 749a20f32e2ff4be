"""Performance estimation without labels: watchkeeper's CBPE against NannyML's, in one run.

Data with known ground truth: a binary classifier whose true P(y = 1 | x) is
``sigmoid(1.5 x1 - x2)`` and whose score ``sigmoid(2 (1.5 x1 - x2))`` is over-confident (both
tools calibrate it on the reference). The reference has 50,000 labelled rows; the analysis
period ``--chunks`` chunks of ``--chunk-size`` rows whose mean of x1 moves from 0 to 1 (a
covariate shift only: P(y | x) is unchanged, so estimation is valid). Labels are drawn from
the true probabilities, and the realized metrics per chunk are scikit-learn's.

A regression (DLE against NannyML's DLE): ``y = sin(3 x1) + x2`` plus noise of sd
``0.2 + |x1|``, the model predicting ``sin(3 x1) + x2``, the same reference size, chunks and
shift of x1.

Per tool and metric (accuracy, F1, ROC AUC; MAE, RMSE): the mean absolute error of the
estimate against the realized value per chunk, the share of chunks whose interval holds the
realized value (watchkeeper: its 95 % interval; NannyML: its confidence band, ±3 sampling
standard errors), the mean interval width, and the time to fit and estimate all chunks (each
tool in its own interpreter; NannyML in its venv, ``bash benchmarks/setup_peers.sh``).

    python benchmarks/estimation.py [--chunks 200] [--chunk-size 1000] [--out results/estimation]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from tools import TELEMETRY_OFF, VENVS_DIR

METRICS = ("accuracy", "f1", "roc_auc")

NANNYML = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
import nannyml as nml
ref, ana = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
chunk_size = int(sys.argv[3])
start = time.perf_counter()
est = nml.CBPE(y_pred_proba="score", y_pred="pred", y_true="y",
               problem_type="classification_binary", metrics=["accuracy", "f1", "roc_auc"],
               chunk_size=chunk_size)
est.fit(ref)
res = est.estimate(ana.drop(columns=["y"])).filter(period="analysis").to_df()
elapsed = time.perf_counter() - start
out = {"version": nml.__version__, "seconds": elapsed}
for m in ("accuracy", "f1", "roc_auc"):
    out[m] = {k: res[(m, k)].tolist() for k in
              ("value", "lower_confidence_boundary", "upper_confidence_boundary")}
reg, reg_ana = pd.read_parquet(sys.argv[4]), pd.read_parquet(sys.argv[5])
start = time.perf_counter()
dle = nml.DLE(feature_column_names=["x1", "x2"], y_pred="pred", y_true="y",
              metrics=["mae", "rmse"], chunk_size=chunk_size)
dle.fit(reg)
res = dle.estimate(reg_ana.drop(columns=["y"])).filter(period="analysis").to_df()
out["regression_seconds"] = time.perf_counter() - start
for m in ("mae", "rmse"):
    out[m] = {k: res[(m, k)].tolist() for k in
              ("value", "lower_confidence_boundary", "upper_confidence_boundary")}
print(json.dumps(out))
"""


def _data(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    x1, x2 = rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, n)
    z = 1.5 * x1 - x2
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-z))).astype(int)
    score = 1 / (1 + np.exp(-2 * z))
    return pd.DataFrame(
        {"x1": x1, "x2": x2, "score": score, "pred": (score > 0.5).astype(int), "y": y}
    )


def _regression(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    """y = sin(3 x1) + x2 + noise of sd 0.2 + |x1|; the model predicts sin(3 x1) + x2."""
    x1, x2 = rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, n)
    pred = np.sin(3 * x1) + x2
    y = pred + rng.normal(0.0, 0.2 + np.abs(x1), n)
    return pd.DataFrame({"x1": x1, "x2": x2, "pred": pred, "y": y})


def _watchkeeper_dle(ref: pd.DataFrame, chunks: list[pd.DataFrame]) -> dict[str, Any]:
    import sklearn.ensemble  # noqa: F401  (imported before the timer, as NannyML's imports are)

    from watchkeeper.estimation import DLE

    start = time.perf_counter()
    dle = DLE.fit(ref[["x1", "x2"]].to_numpy(), ref["y"].to_numpy(), ref["pred"].to_numpy())
    rows = [
        dle.estimate(dle.state(c[["x1", "x2"]].to_numpy(), c["pred"].to_numpy()))["metrics"]
        for c in chunks
    ]
    out: dict[str, Any] = {"seconds": time.perf_counter() - start}
    for name in ("mae", "rmse"):
        out[name] = {
            "value": [r[name]["value"] for r in rows],
            "lower_confidence_boundary": [r[name]["ci_low"] for r in rows],
            "upper_confidence_boundary": [r[name]["ci_high"] for r in rows],
        }
    return out


def _watchkeeper(ref: pd.DataFrame, chunks: list[pd.DataFrame]) -> dict[str, Any]:
    import sklearn.isotonic  # noqa: F401  (imported before the timer, as NannyML's imports are)

    from watchkeeper.estimation import CBPE

    start = time.perf_counter()
    cbpe = CBPE.fit(ref["y"].to_numpy(), ref["score"].to_numpy())
    rows = []
    for c in chunks:
        m = cbpe.estimate(cbpe.state(c["score"].to_numpy(), c["pred"].to_numpy()))["metrics"]
        rows.append(m)
    out: dict[str, Any] = {"seconds": time.perf_counter() - start}
    for name in METRICS:
        out[name] = {
            "value": [r[name]["value"] for r in rows],
            "lower_confidence_boundary": [r[name]["ci_low"] for r in rows],
            "upper_confidence_boundary": [r[name]["ci_high"] for r in rows],
        }
    return out


def _nannyml(frames: dict[str, pd.DataFrame], size: int, python: Path) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name in ("ref", "ana", "reg", "reg_ana"):
            paths.append(str(Path(tmp) / f"{name}.parquet"))
            frames[name].to_parquet(paths[-1])
        proc = subprocess.run(
            [str(python), "-c", NANNYML, paths[0], paths[1], str(size), *paths[2:]],
            capture_output=True,
            text=True,
            check=True,
            env={**TELEMETRY_OFF, "PATH": "/usr/bin:/bin"},
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _score(result: dict[str, Any], realized: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in realized.items():
        value = np.asarray(result[name]["value"], dtype=float)
        lo = np.asarray(result[name]["lower_confidence_boundary"], dtype=float)
        hi = np.asarray(result[name]["upper_confidence_boundary"], dtype=float)
        real = np.asarray(values)
        out[name] = {
            "mae": float(np.mean(np.abs(value - real))),
            "coverage": float(np.mean((lo <= real) & (real <= hi))),
            "width": float(np.mean(hi - lo)),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--nannyml", type=Path, default=VENVS_DIR / "nannyml" / "bin" / "python")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ref = _data(rng, 50_000, 0.0)
    shifts = np.linspace(0.0, 1.0, args.chunks)
    chunks = [_data(rng, args.chunk_size, s) for s in shifts]
    realized = {
        "accuracy": [accuracy_score(c["y"], c["pred"]) for c in chunks],
        "f1": [f1_score(c["y"], c["pred"]) for c in chunks],
        "roc_auc": [roc_auc_score(c["y"], c["score"]) for c in chunks],
    }
    reg = _regression(rng, 50_000, 0.0)
    reg_chunks = [_regression(rng, args.chunk_size, s) for s in shifts]
    realized_reg = {
        "mae": [float(np.mean(np.abs(c["y"] - c["pred"]))) for c in reg_chunks],
        "rmse": [float(np.sqrt(np.mean((c["y"] - c["pred"]) ** 2))) for c in reg_chunks],
    }
    wk_reg = _watchkeeper_dle(reg, reg_chunks)
    results = {"watchkeeper": {**_watchkeeper(ref, chunks)}}
    results["watchkeeper"].update(regression_seconds=wk_reg.pop("seconds"), **wk_reg)
    if args.nannyml.exists():
        frames = {
            "ref": ref,
            "ana": pd.concat(chunks, ignore_index=True),
            "reg": reg,
            "reg_ana": pd.concat(reg_chunks, ignore_index=True),
        }
        results["nannyml"] = _nannyml(frames, args.chunk_size, args.nannyml)
    table = {
        tool: {
            **_score(r, {**realized, **realized_reg}),
            "seconds": r["seconds"],
            "regression_seconds": r["regression_seconds"],
        }
        for tool, r in results.items()
    }
    lines = [
        f"{args.chunks} chunks of {args.chunk_size} rows, reference 50,000 rows"
        + (f"; NannyML {results['nannyml']['version']}" if "nannyml" in results else ""),
        "",
        "| tool | metric | mean abs. error | interval holds realized | mean width | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for tool, scores in table.items():
        for name in (*METRICS, "mae", "rmse"):
            s = scores[name]
            seconds = scores["seconds" if name in METRICS else "regression_seconds"]
            lines.append(
                f"| {tool} | {name} | {s['mae']:.4f} | {s['coverage']:.1%} | {s['width']:.4f} "
                f"| {seconds:.2f} |"
            )
    print("\n".join(lines))
    if args.out is not None:
        args.out.with_suffix(".json").write_text(json.dumps(table, indent=2), encoding="utf-8")
        args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
