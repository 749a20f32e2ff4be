"""watchkeeper: ``watchkeeper.compare(reference, current)`` with its defaults.

Input: pyarrow Tables read from parquet before the timer. Drift mode times
``compare`` and reads ``report.drifted_columns``; profile mode times
``watchkeeper.profile(current)``.
"""

from __future__ import annotations

from typing import Any

import _harness as h


def _version() -> str:
    # Called before the timer, like the peers' ``import <tool>``: watchkeeper's top-level names
    # are lazy, so load what compare() and profile() use here, not inside the timed call.
    import watchkeeper
    import watchkeeper.profiles
    import watchkeeper.report
    import watchkeeper.stats.drift

    return str(watchkeeper.__version__)


def _load(inputs: h.Inputs) -> tuple[Any, Any]:
    import pyarrow.parquet as pq

    return pq.read_table(inputs.reference_path), pq.read_table(inputs.current_path)


def _detect(tables: tuple[Any, Any]) -> h.Outcome:
    import watchkeeper

    report = watchkeeper.compare(*tables)
    details: dict[str, Any] = {}
    for col, d in report.drift.items():
        details[col] = {
            "method": getattr(d, "method", None),
            "statistic": getattr(d, "statistic", None),
            "threshold": getattr(d, "threshold", None),
            "p_value": getattr(d, "p_value", None),
            "drifted": bool(d.drifted),
        }
    return h.Outcome(list(report.drifted_columns), details)


def _profile(tables: tuple[Any, Any]) -> int:
    import watchkeeper

    current = tables[1]
    watchkeeper.profile(current)
    return int(current.num_rows)


if __name__ == "__main__":
    h.main("watchkeeper", _version, _load, _detect, profile=_profile)
