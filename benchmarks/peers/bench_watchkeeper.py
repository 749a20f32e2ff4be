"""watchkeeper: ``watchkeeper.compare(reference, current)`` with its defaults.

Input (``--input``): pandas DataFrames with object strings or ``category`` columns, or
pyarrow Tables, read from parquet before the timer; converting them is watchkeeper's own
work inside ``compare``, timed. Drift mode times
``compare`` and reads ``report.drifted_columns``; profile mode times
``watchkeeper.profile(current)``. Chunked mode (``benchmarks/analyze.py``) reads pandas
frames, like the peers, and times ``Reference.fit(reference, multivariate=None).analyze(
current, chunk_size=...)``: per-column drift, as NannyML's univariate calculator computes.
"""

from __future__ import annotations

from typing import Any

import _harness as h


def _version() -> str:
    # Called before the timer, like the peers' ``import <tool>``: watchkeeper's top-level names
    # are lazy, so load what compare() and profile() use here, not inside the timed call.
    import watchkeeper
    import watchkeeper.analysis.timeline
    import watchkeeper.profiles
    import watchkeeper.reference
    import watchkeeper.report
    import watchkeeper.stats.drift

    return str(watchkeeper.__version__)


def _load(inputs: h.Inputs) -> tuple[Any, Any]:
    return h.read_frames(inputs, h.FORMS)


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


def _load_pandas(inputs: h.Inputs) -> tuple[Any, Any]:
    if inputs.mode != "chunks":
        return _load(inputs)
    return h.read_pandas(inputs.reference_path), h.read_pandas(inputs.current_path)


def _chunks(args: tuple[Any, Any, h.Inputs]) -> h.Outcome:
    import watchkeeper

    ref, cur, inputs = args
    # column by column, like NannyML's univariate calculator: the joint (PCA) check is off
    reference = watchkeeper.Reference.fit(ref, multivariate=None)
    timeline = reference.analyze(cur, chunk_size=inputs.chunk_size)
    cells = [[i, col] for i, rep in enumerate(timeline.reports) for col in rep.drifted_columns]
    n = len(timeline.reports)
    return h.Outcome(sorted({c for _, c in cells}), {"cells": cells, "chunks": n, "done": n})


def _profile(tables: tuple[Any, Any]) -> int:
    import watchkeeper

    current = tables[1]
    watchkeeper.profile(current)
    return len(current)


if __name__ == "__main__":
    h.main("watchkeeper", _version, _load_pandas, _detect, profile=_profile, chunks=_chunks)
