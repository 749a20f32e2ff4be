"""Export NannyML's synthetic datasets (they ship in its wheel) to Parquet, untimed.

Runs in the nannyml venv: ``python export_nannyml.py OUT_DIR`` writes
``OUT_DIR/<name>/reference.parquet`` and ``OUT_DIR/<name>/analysis.parquet`` with the model
inputs only (no id, timestamp, target, prediction or period column), so every tool of
``benchmarks/analyze.py`` reads the same feature frames. Boolean columns become the strings
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
    main(Path(sys.argv[1]))
