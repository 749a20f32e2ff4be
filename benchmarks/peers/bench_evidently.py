"""Evidently: the ``DataDriftPreset`` with its defaults (evidently 0.7.x API).

``Report([DataDriftPreset()], include_tests=True).run(current, reference)`` on
``Dataset.from_pandas`` objects whose ``DataDefinition`` names the numeric and
categorical columns (so no column is mis-typed by inference). The preset picks each
column's test itself; above 1,000 rows that is the normed Wasserstein distance
(numeric) and the Jensen-Shannon distance (categorical), threshold 0.1.
``include_tests=True`` only adds the per-column pass/fail verdicts read below.

Chunked mode (``benchmarks/analyze.py``): the same report run once per chunk of
``--chunk-size`` rows against the whole reference (its ``Dataset`` built once), the way
Evidently users loop over snapshots; with ``--budget`` no chunk is started after that many
seconds, and the result says how many chunks were done.

Input: pandas DataFrames (``--input``: object strings or ``category`` columns) read from
parquet before the timer; ``Dataset.from_pandas``
and the report run are timed.
"""

from __future__ import annotations

from typing import Any

import _harness as h


def _version() -> str:
    import evidently

    return str(evidently.__version__)


def _load(inputs: h.Inputs) -> tuple[Any, Any]:
    return h.read_frames(inputs)


def _definition(ref: Any) -> Any:
    import pandas as pd
    from evidently import DataDefinition

    def categorical(dtype: Any) -> bool:
        return (
            isinstance(dtype, pd.CategoricalDtype)
            or pd.api.types.is_string_dtype(dtype)
            or pd.api.types.is_bool_dtype(dtype)
        )

    cats = [c for c in ref.columns if categorical(ref[c].dtype)]
    nums = [c for c in ref.columns if c not in cats]
    return DataDefinition(numerical_columns=nums, categorical_columns=cats)


def _detect(frames: tuple[Any, Any]) -> h.Outcome:
    from evidently import Dataset

    ref, cur = frames
    definition = _definition(ref)
    return _run(
        Dataset.from_pandas(ref, data_definition=definition),
        Dataset.from_pandas(cur, data_definition=definition),
    )


def _chunks(args: tuple[Any, Any, h.Inputs]) -> h.Outcome:
    import time

    from evidently import Dataset

    ref, cur, inputs = args
    start = time.perf_counter()
    size = inputs.chunk_size or len(cur)
    definition = _definition(ref)
    reference = Dataset.from_pandas(ref, data_definition=definition)
    starts = range(0, len(cur), size)
    cells: list[list[Any]] = []
    done = 0
    for i, lo in enumerate(starts):
        if inputs.budget is not None and time.perf_counter() - start > inputs.budget:
            break
        chunk = Dataset.from_pandas(cur.iloc[lo : lo + size], data_definition=definition)
        cells += [[i, col] for col in _run(reference, chunk).flagged]
        done += 1
    return h.Outcome(
        sorted({c for _, c in cells}), {"cells": cells, "chunks": len(starts), "done": done}
    )


def _run(reference: Any, current: Any) -> h.Outcome:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=current, reference_data=reference
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
    h.main("evidently", _version, _load, _detect, chunks=_chunks)
