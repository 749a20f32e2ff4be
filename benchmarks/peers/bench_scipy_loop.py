"""The floor: a bare scipy loop, one test per column, flag when p < 0.05.

* numeric columns: ``scipy.stats.ks_2samp(ref, cur)`` (defaults: two-sided, method="auto",
  which is the asymptotic distribution at this size);
* categorical columns: ``scipy.stats.chi2_contingency`` on the 2 x k table of category
  counts (categories aligned over the union of both frames).

Input: pandas DataFrames (``--input``: object strings or ``category`` columns) read from
parquet before the timer (what such a script
usually starts from); the per-column numpy conversion and counting are timed.
"""

from __future__ import annotations

from typing import Any

import _harness as h


def _version() -> str:
    import scipy

    return str(scipy.__version__)


def _load(inputs: h.Inputs) -> tuple[Any, Any]:
    return h.read_frames(inputs)


def _detect(frames: tuple[Any, Any]) -> h.Outcome:
    import numpy as np
    import pandas as pd
    from scipy import stats

    ref, cur = frames
    cats = set(h.string_columns(ref))
    flagged: list[str] = []
    details: dict[str, Any] = {}
    for col in ref.columns:
        if col in cats:
            counts = pd.concat([ref[col].value_counts(), cur[col].value_counts()], axis=1).fillna(0)
            table = np.asarray(counts.to_numpy(dtype=np.float64).T)
            table = table[:, table.sum(axis=0) > 0]
            res = stats.chi2_contingency(table)
            stat, p = float(res.statistic), float(res.pvalue)
            method = "chi2"
        else:
            res = stats.ks_2samp(ref[col].to_numpy(), cur[col].to_numpy())
            stat, p = float(res.statistic), float(res.pvalue)
            method = "ks"
        details[col] = {"method": method, "statistic": stat, "p_value": p}
        if p < 0.05:
            flagged.append(col)
    return h.Outcome(flagged, details)


if __name__ == "__main__":
    h.main("scipy-loop", _version, _load, _detect)
