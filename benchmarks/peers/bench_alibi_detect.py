"""alibi-detect: ``TabularDrift`` with its defaults (alibi-detect 0.13.x).

``TabularDrift(x_ref, p_val=0.05, categories_per_feature={i: None for categorical i})``
then ``predict(x_cur, drift_type="feature")``: a two-sample KS test per numeric
feature and a chi-square test per categorical feature; a feature is flagged when its
p-value < 0.05 (the Bonferroni correction only applies to the batch-level verdict).

Input: pandas DataFrames (``--input``, object strings or ``category`` columns) read from
parquet before the timer. The conversion that
alibi-detect needs - one float64 matrix per frame with categoricals as integer codes
over the union of both frames' categories - is timed, as is fit (init) + predict.
"""

from __future__ import annotations

from typing import Any

import _harness as h


def _version() -> str:
    import alibi_detect

    return str(alibi_detect.__version__)


def _load(inputs: h.Inputs) -> tuple[Any, Any]:
    return h.read_frames(inputs)


def _to_matrix(df: Any, cats: list[str], categories: dict[str, list[Any]]) -> Any:
    import numpy as np
    import pandas as pd

    out = np.empty((len(df), len(df.columns)), dtype=np.float64)
    for i, col in enumerate(df.columns):
        if col in cats:
            out[:, i] = pd.Categorical(df[col], categories=categories[col]).codes
        else:
            out[:, i] = df[col].to_numpy(dtype=np.float64)
    return out


def _detect(frames: tuple[Any, Any]) -> h.Outcome:
    import pandas as pd
    from alibi_detect.cd import TabularDrift

    ref, cur = frames
    columns = list(ref.columns)
    cats = h.string_columns(ref)
    categories = {
        c: list(dict.fromkeys([*pd.unique(ref[c].dropna()), *pd.unique(cur[c].dropna())]))
        for c in cats
    }
    x_ref = _to_matrix(ref, cats, categories)
    x_cur = _to_matrix(cur[columns], cats, categories)
    detector = TabularDrift(
        x_ref, p_val=0.05, categories_per_feature={columns.index(c): None for c in cats}
    )
    pred = detector.predict(x_cur, drift_type="feature")["data"]
    flagged: list[str] = []
    details: dict[str, Any] = {}
    for i, col in enumerate(columns):
        drifted = bool(pred["is_drift"][i])
        details[col] = {
            "method": "chi2" if col in cats else "ks",
            "statistic": float(pred["distance"][i]),
            "p_value": float(pred["p_val"][i]),
            "drifted": drifted,
        }
        if drifted:
            flagged.append(col)
    return h.Outcome(flagged, details)


if __name__ == "__main__":
    h.main("alibi-detect", _version, _load, _detect)
