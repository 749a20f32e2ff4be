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

NannyML's synthetic datasets (car loan, binary, multiclass, car price; ``--datasets``): they
ship in its wheel and are exported, untimed, by its own interpreter with their realized
targets (``peers/export_nannyml.py --estimation``). Both tools fit CBPE (binary, multiclass)
or DLE (car price) on the reference and estimate each 5,000-row chunk of the analysis period;
per chunk the estimate is scored against the metric realized from the chunk's labels
(multiclass: macro F1, macro one-vs-rest ROC AUC), with wall and CPU seconds of each tool.

    python benchmarks/estimation.py [--chunks 200] [--chunk-size 1000] [--out results/estimation]
        [--datasets car_loan,binary,multiclass,car_price] [--skip-generated]

``WATCHKEEPER_BENCH_VENVS`` points at another checkout's ``benchmarks/.venvs``.
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

import analyze_data as ad
import tools
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


# NannyML's synthetic datasets: their task, and NannyML's chunk size on them
DATASETS = {
    "car_loan": "binary",
    "binary": "binary",
    "multiclass": "multiclass",
    "car_price": "regression",
}
DATASET_CHUNK = 5_000
CLASSIFICATION = ("accuracy", "f1", "roc_auc")
REGRESSION = ("mae", "rmse")

# NannyML on one of its datasets: CBPE or DLE with its defaults and chunk_size; wall and CPU
# seconds of fit + estimate (the frames read before the timer)
NANNYML_DATASET = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
import nannyml as nml
ref, ana = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
task, chunk_size = sys.argv[3], int(sys.argv[4])
for frame in (ref, ana):
    for col in frame.columns:
        if str(frame[col].dtype) in ("string", "str"):
            frame[col] = frame[col].astype(object)
scores = [c for c in ref.columns if c.startswith("score")]
features = [c for c in ref.columns if c not in ("target", "pred", *scores)]
start, cpu = time.perf_counter(), time.process_time()
if task == "regression":
    metrics = ["mae", "rmse"]
    est = nml.DLE(feature_column_names=features, y_pred="pred", y_true="target",
                  metrics=metrics, chunk_size=chunk_size)
else:
    metrics = ["accuracy", "f1", "roc_auc"]
    proba = "score" if task == "binary" else {c.removeprefix("score_"): c for c in scores}
    est = nml.CBPE(y_pred_proba=proba, y_pred="pred", y_true="target",
                   problem_type="classification_" + task, metrics=metrics, chunk_size=chunk_size)
est.fit(ref)
res = est.estimate(ana.drop(columns=["target"])).filter(period="analysis").to_df()
out = {"version": nml.__version__, "seconds": time.perf_counter() - start,
       "cpu_seconds": time.process_time() - cpu}
for m in metrics:
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


def _chunks(frame: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """NannyML's size chunking: consecutive rows, the last chunk only when full."""
    return [frame.iloc[lo : lo + size] for lo in range(0, len(frame) - size + 1, size)]


def _labels(values: pd.Series) -> np.ndarray:
    """Class labels as strings; numbers as integers first (NannyML's car loan reference has
    its target as floats, its analysis targets as integers)."""
    if pd.api.types.is_numeric_dtype(values):
        values = values.astype(np.int64)
    return np.asarray(values.astype(str), dtype=object)


def _realized(task: str, chunks: list[pd.DataFrame], classes: list[str]) -> dict[str, list[float]]:
    """Each chunk's realized metrics from its labels (scikit-learn); multiclass: macro F1 and
    macro one-vs-rest ROC AUC, as both tools estimate them."""
    if task == "regression":
        return {
            "mae": [float(np.mean(np.abs(c["target"] - c["pred"]))) for c in chunks],
            "rmse": [float(np.sqrt(np.mean((c["target"] - c["pred"]) ** 2))) for c in chunks],
        }
    out: dict[str, list[float]] = {m: [] for m in CLASSIFICATION}
    for c in chunks:
        y, pred = _labels(c["target"]), _labels(c["pred"])
        out["accuracy"].append(float(accuracy_score(y, pred)))
        if task == "binary":
            out["f1"].append(float(f1_score(y, pred, pos_label=classes[-1])))
            out["roc_auc"].append(float(roc_auc_score(y == classes[-1], c["score"])))
        else:
            scores = c[[f"score_{k}" for k in classes]].to_numpy()
            out["f1"].append(float(f1_score(y, pred, average="macro", labels=classes)))
            auc = roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=classes)
            out["roc_auc"].append(float(auc))
    return out


def _watchkeeper_dataset(
    task: str, ref: pd.DataFrame, chunks: list[pd.DataFrame], classes: list[str]
) -> dict[str, Any]:
    """watchkeeper's CBPE or DLE, fitted on the reference and estimating every chunk from its
    state; wall and CPU seconds."""
    import pyarrow as pa
    import sklearn.ensemble
    import sklearn.isotonic  # noqa: F401  (both imported before the timer, as NannyML's are)

    from watchkeeper.estimation import CBPE, DLE
    from watchkeeper.estimation.features import FeatureEncoder
    from watchkeeper.schema import infer_schema

    start, cpu = time.perf_counter(), time.process_time()
    if task == "regression":
        table = pa.Table.from_pandas(ref, preserve_index=False)
        schema = infer_schema(table, target="target", prediction="pred")
        enc = FeatureEncoder.fit(table, schema, exclude=("target", "pred"))
        dle = DLE.fit(enc.transform(table), ref["target"], ref["pred"], categorical=enc.categorical)
        rows = [
            dle.estimate(
                dle.state(enc.transform(pa.Table.from_pandas(c, preserve_index=False)), c["pred"])
            )["metrics"]
            for c in chunks
        ]
        names: tuple[str, ...] = REGRESSION
    else:
        cols = "score" if task == "binary" else [f"score_{k}" for k in classes]
        labels = _labels(ref["target"])
        cbpe = CBPE.fit(labels, ref[cols].to_numpy(), classes=classes)
        rows = [
            cbpe.estimate(cbpe.state(c[cols].to_numpy(), _labels(c["pred"])))["metrics"]
            for c in chunks
        ]
        names = CLASSIFICATION
    out: dict[str, Any] = {
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
    }
    for name in names:
        out[name] = {
            "value": [r[name]["value"] for r in rows],
            "lower_confidence_boundary": [r[name]["ci_low"] for r in rows],
            "upper_confidence_boundary": [r[name]["ci_high"] for r in rows],
        }
    return out


def nannyml_datasets(names: list[str], python: Path) -> list[str]:
    """CBPE / DLE of both tools on NannyML's own datasets (exported from its wheel by its
    interpreter, untimed), chunks of ``DATASET_CHUNK`` rows, against each chunk's realized
    metrics: the table's lines."""
    folder = ad.ROOT
    marker = folder / "nannyml_estimation.json"
    if not marker.exists():
        proc = subprocess.run(
            [str(python), str(tools.PEERS_DIR / "export_nannyml.py"), str(folder), "--estimation"],
            capture_output=True,
            text=True,
            check=True,
            env={**TELEMETRY_OFF, "PATH": "/usr/bin:/bin"},
        )
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(proc.stdout.strip().splitlines()[-1])
    lines = [
        "| dataset | chunks | metric | tool | mean abs. error | interval holds realized "
        "| mean width | seconds | CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        task = DATASETS[name]
        ref_path = folder / name / "estimation_reference.parquet"
        ana_path = folder / name / "estimation_analysis.parquet"
        ref, ana = pd.read_parquet(ref_path), pd.read_parquet(ana_path)
        chunks = _chunks(ana, DATASET_CHUNK)
        classes = sorted(set(_labels(ref["target"]))) if task != "regression" else []
        realized = _realized(task, chunks, classes)
        results = {"watchkeeper": _watchkeeper_dataset(task, ref, chunks, classes)}
        proc = subprocess.run(
            [
                str(python),
                "-c",
                NANNYML_DATASET,
                str(ref_path),
                str(ana_path),
                task,
                str(DATASET_CHUNK),
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**TELEMETRY_OFF, "PATH": "/usr/bin:/bin"},
        )
        if proc.returncode == 0:
            results["nannyml"] = json.loads(proc.stdout.strip().splitlines()[-1])
        else:
            print(f"nannyml on {name} failed: {proc.stderr.strip().splitlines()[-1:]}")
        for metric in realized:
            for tool, r in results.items():
                if len(r[metric]["value"]) != len(chunks):  # the same chunks, or no row
                    continue
                s = _score(r, {metric: realized[metric]})[metric]
                lines.append(
                    f"| {name} | {len(chunks)} × {DATASET_CHUNK:,} | {metric} | {tool} "
                    f"| {s['mae']:.4f} | {s['coverage']:.0%} | {s['width']:.4f} "
                    f"| {r['seconds']:.2f} | {r['cpu_seconds']:.2f} |"
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--nannyml", type=Path, default=VENVS_DIR / "nannyml" / "bin" / "python")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--datasets",
        default=",".join(DATASETS),
        help="NannyML's own datasets to run both tools on (empty: none)",
    )
    parser.add_argument("--skip-generated", action="store_true", help="only NannyML's datasets")
    args = parser.parse_args()
    datasets = [d for d in args.datasets.split(",") if d]
    if datasets and args.nannyml.exists():
        dataset_lines = nannyml_datasets(datasets, args.nannyml)
        print("\n".join(dataset_lines))
        if args.out is not None:
            path = args.out.with_name(args.out.name + "_nannyml_datasets.md")
            path.write_text("\n".join(dataset_lines) + "\n", encoding="utf-8")
    if args.skip_generated:
        return
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
