"""NannyML: ``UnivariateDriftCalculator`` with its defaults (nannyml 0.13.x).

``UnivariateDriftCalculator(column_names=all columns).fit(reference).calculate(current)``
with the default methods (Jensen-Shannon distance for continuous and categorical
columns), the default chunking (10 chunks per period) and the default thresholds
(mean +/- 3 std of the metric over the reference chunks). NannyML answers per
chunk, so a column counts as flagged when ANY analysis chunk raises an alert.

Chunked mode (``benchmarks/analyze.py``): the same calculator with ``chunk_size=`` given, so
its reference chunks (which set the thresholds) and its analysis chunks have that many rows;
every (analysis chunk, column) with an alert is reported.

Input: pandas DataFrames (``--input``: object strings or ``category`` columns) read from
parquet before the timer; fit + calculate are timed.
Usage telemetry is disabled (``NML_DISABLE_USAGE_LOGGING=1``) - there is no network here.
"""

from __future__ import annotations

import os
from typing import Any

import _harness as h

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")


def _version() -> str:
    import nannyml

    return str(nannyml.__version__)


def _load(inputs: h.Inputs) -> tuple[Any, Any]:
    return h.read_frames(inputs)


def _detect(frames: tuple[Any, Any]) -> h.Outcome:
    import nannyml as nml

    ref, cur = frames
    calc = nml.UnivariateDriftCalculator(column_names=list(ref.columns))
    calc.fit(ref)
    table = calc.calculate(cur).filter(period="analysis").to_df()
    flagged: list[str] = []
    details: dict[str, Any] = {}
    for col in ref.columns:
        for method in {m for (c, m, _) in table.columns if c == col}:
            alerts = table[(col, method, "alert")].fillna(False).astype(bool)
            values = table[(col, method, "value")]
            details[col] = {
                "method": method,
                "statistic_max": float(values.max()),
                "upper_threshold": table[(col, method, "upper_threshold")].iloc[0],
                "alert_chunks": int(alerts.sum()),
                "chunks": len(alerts),
            }
            if alerts.any():
                flagged.append(col)
    return h.Outcome(sorted(set(flagged)), details)


def _chunks(args: tuple[Any, Any, h.Inputs]) -> h.Outcome:
    import nannyml as nml

    ref, cur, inputs = args
    columns = list(ref.columns)
    calc = nml.UnivariateDriftCalculator(column_names=columns, chunk_size=inputs.chunk_size)
    calc.fit(ref)
    table = calc.calculate(cur).filter(period="analysis").to_df()
    cells: list[list[Any]] = []
    for col in columns:
        for method in {m for (c, m, _) in table.columns if c == col}:
            alerts = table[(col, method, "alert")].fillna(False).astype(bool).to_numpy()
            cells += [[int(i), col] for i in alerts.nonzero()[0]]
    return h.Outcome(
        sorted({c for _, c in cells}), {"cells": cells, "chunks": len(table), "done": len(table)}
    )


if __name__ == "__main__":
    h.main("nannyml", _version, _load, _detect, chunks=_chunks)
