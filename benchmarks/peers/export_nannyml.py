"""Export NannyML's synthetic datasets (they ship in its wheel) to Parquet, untimed.

Runs in the nannyml venv: ``python export_nannyml.py OUT_DIR`` writes
``OUT_DIR/<name>/reference.parquet`` and ``OUT_DIR/<name>/analysis.parquet`` with the model
inputs only (no id, timestamp, target, prediction or period column), so every tool of
``benchmarks/analyze.py`` reads the same feature frames. ``python export_nannyml.py OUT_DIR
--estimation`` writes ``estimation_reference.parquet`` and ``estimation_analysis.parquet``
beside them for ``benchmarks/estimation.py``: the same inputs with the target (the analysis
period's realized one), the prediction and the scores. Boolean columns become the strings
``"True"`` / ``"False"`` (categorical for every tool), other text stays text.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

DATASETS = {
    "car_loan": "load_synthetic_car_loan_dataset",
    "binary": "load_synthetic_binary_classification_dataset",
    "multiclass": "load_synthetic_multiclass_classification_dataset",
    "car_price": "load_synthetic_car_price_dataset",
}
NOT_FEATURES = {"id", "timestamp", "period", "repaid", "work_home_actual", "y_true", "y_pred"}


def features(frame):  # type: ignore[no-untyped-def]
    keep = [c for c in frame.columns if c not in NOT_FEATURES and not c.startswith("y_pred")]
    out = frame[keep].copy()
    for col in keep:
        if out[col].dtype == bool:
            out[col] = out[col].map({True: "True", False: "False"})
    return out.reset_index(drop=True)


# per dataset: the target, the predicted label, the score column(s) (one, or class → column)
ESTIMATION = {
    "car_loan": ("repaid", "y_pred", "y_pred_proba"),
    "binary": ("work_home_actual", "y_pred", "y_pred_proba"),
    "multiclass": ("y_true", "y_pred", "y_pred_proba_"),  # one column per class: the prefix
    "car_price": ("y_true", "y_pred", None),
}


def estimation(out_dir: Path) -> None:
    """``OUT_DIR/<name>/estimation_{reference,analysis}.parquet``: the model inputs (as
    :func:`features` gives them) with ``target``, ``pred`` and the score columns (``score``,
    or ``score_<class>``), the analysis period's realized targets joined on ``id`` (NannyML
    ships them apart), rows in NannyML's order."""
    import nannyml

    summary = {}
    for name, loader in DATASETS.items():
        reference, analysis, targets = getattr(nannyml.datasets, loader)()
        target, pred, score = ESTIMATION[name]
        analysis = analysis.merge(targets, on="id", how="left", validate="one_to_one")
        out = out_dir / name
        out.mkdir(parents=True, exist_ok=True)
        for period, frame in (("reference", reference), ("analysis", analysis)):
            table = features(frame)
            table["target"] = frame[target].to_numpy()
            table["pred"] = frame[pred].to_numpy()
            if score is not None and score.endswith("_"):
                for col in [c for c in frame.columns if c.startswith(score)]:
                    table["score_" + col.removeprefix(score)] = frame[col].to_numpy()
            elif score is not None:
                table["score"] = frame[score].to_numpy()
            table.to_parquet(out / f"estimation_{period}.parquet", index=False)
        summary[name] = {"reference": len(reference), "analysis": len(analysis)}
    print(json.dumps({"nannyml": nannyml.__version__, "datasets": summary}))


def main(out_dir: Path) -> None:
    import nannyml

    summary = {}
    for name, loader in DATASETS.items():
        reference, analysis, *_ = getattr(nannyml.datasets, loader)()
        target = out_dir / name
        target.mkdir(parents=True, exist_ok=True)
        ref, cur = features(reference), features(analysis)
        ref.to_parquet(target / "reference.parquet", index=False)
        cur.to_parquet(target / "analysis.parquet", index=False)
        summary[name] = {"reference": len(ref), "analysis": len(cur), "columns": list(ref.columns)}
    print(json.dumps({"nannyml": nannyml.__version__, "datasets": summary}))


if __name__ == "__main__":
    if sys.argv[2:] == ["--estimation"]:
        estimation(Path(sys.argv[1]))
    else:
        main(Path(sys.argv[1]))
