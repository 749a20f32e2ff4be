"""Evidently: the ``DataDriftPreset`` with its defaults (evidently 0.7.x API).

``Report([DataDriftPreset()], include_tests=True).run(current, reference)`` on
``Dataset.from_pandas`` objects whose ``DataDefinition`` names the numeric and
categorical columns (so no column is mis-typed by inference). The preset picks each
column's test itself; above 1,000 rows that is the normed Wasserstein distance
(numeric) and the Jensen-Shannon distance (categorical), threshold 0.1.
``include_tests=True`` only adds the per-column pass/fail verdicts read below.

Input: pandas DataFrames read from parquet before the timer; ``Dataset.from_pandas``
and the report run are timed.
"""

from __future__ import annotations

from typing import Any

import _harness as h


def _version() -> str:
    import evidently

    return str(evidently.__version__)


def _load(inputs: h.Inputs) -> tuple[Any, Any]:
    return h.read_pandas(inputs.reference_path), h.read_pandas(inputs.current_path)


def _detect(frames: tuple[Any, Any]) -> h.Outcome:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = frames
    cats = [c for c in ref.columns if isinstance(ref[c].dtype, pd.CategoricalDtype)]
    nums = [c for c in ref.columns if c not in cats]
    definition = DataDefinition(numerical_columns=nums, categorical_columns=cats)
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    result = snapshot.dict()
    details: dict[str, Any] = {}
    for metric in result["metrics"]:
        cfg = metric.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift"):
            details[cfg["column"]] = {
                "method": cfg.get("method"),
                "statistic": metric.get("value"),
                "threshold": cfg.get("threshold"),
            }
    flagged = []
    for test in result.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        column = params.get("column")
        if params.get("type", "").endswith("ValueDrift") and column:
            drifted = test.get("status") == "FAIL"
            details.setdefault(column, {})["drifted"] = drifted
            if drifted:
                flagged.append(column)
    if not details:
        raise RuntimeError("no ValueDrift results found in the Evidently snapshot")
    return h.Outcome(flagged, details)


if __name__ == "__main__":
    h.main("evidently", _version, _load, _detect)
