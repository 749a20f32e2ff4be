"""Operational aggregates of prediction events: count, errors and a latency histogram.

The aggregate is a JSON-safe dict that merges by adding its parts, so a window's figures are
the merge of its batches' (and a day's the merge of its windows'). Latency is kept in seconds
in the cells of :data:`LATENCY_BOUNDS` (Prometheus ``le`` cells: a value equal to a bound
counts in that bound's cell) plus one cell above the last bound.

Examples
--------
>>> import pyarrow as pa
>>> a = operations(pa.table({"latency_ms": [2.0, 40.0, None], "status": ["ok", "ERROR", None]}))
>>> a["count"], a["errors"], a["latency_observed"]
(3, 1, 2)
>>> b = merge_operations(a, a)
>>> b["count"], b["errors"], sum(b["latency_counts"])
(6, 2, 4)
>>> latency_quantile([0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0.5)  # inside (2.5, 5] ms
0.00375
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# The stored form, JSON-safe: {"count", "errors", "latency_counts" (one per cell),
# "latency_sum" (seconds), "latency_observed" (events with a latency)}
Operations = dict[str, Any]


def operations(table: pa.Table) -> Operations:
    """The operational aggregate of a set of events.

    An event is an error when its ``status`` is ``error`` (any case) or its ``error`` field is
    set; its latency is its finite ``latency_ms``, counted in seconds."""
    n = table.num_rows
    errors = np.zeros(n, dtype=bool)
    if "status" in table.column_names:
        status = pc.fill_null(pc.cast(table.column("status"), pa.string()), "")
        errors |= np.asarray(
            pc.equal(pc.utf8_lower(status), "error").to_numpy(zero_copy_only=False)
        )
    if "error" in table.column_names:
        errors |= np.asarray(table.column("error").is_valid().to_numpy(zero_copy_only=False))
    counts = [0] * (len(LATENCY_BOUNDS) + 1)
    total, observed = 0.0, 0
    if "latency_ms" in table.column_names:
        ms = np.asarray(table.column("latency_ms").to_numpy(zero_copy_only=False), dtype=float)
        seconds = ms[np.isfinite(ms)] / 1000.0
        counts = np.bincount(
            np.searchsorted(LATENCY_BOUNDS, seconds, side="left"), minlength=len(LATENCY_BOUNDS) + 1
        ).tolist()
        total, observed = float(seconds.sum()), int(seconds.size)
    return {
        "count": n,
        "errors": int(errors.sum()),
        "latency_counts": counts,
        "latency_sum": total,
        "latency_observed": observed,
    }


def merge_operations(a: Operations | None, b: Operations) -> Operations:
    """The aggregate of both sets of events (``a`` None or empty: ``b``)."""
    if not a:
        return b
    return {
        "count": a["count"] + b["count"],
        "errors": a["errors"] + b["errors"],
        "latency_counts": [
            x + y for x, y in zip(a["latency_counts"], b["latency_counts"], strict=True)
        ],
        "latency_sum": a["latency_sum"] + b["latency_sum"],
        "latency_observed": a["latency_observed"] + b["latency_observed"],
    }


def latency_quantile(counts: list[int], q: float) -> float | None:
    """The ``q`` quantile (seconds) of a latency histogram on :data:`LATENCY_BOUNDS`, linear
    inside a cell (the cell above the last bound reads as ending at twice that bound); None
    for an empty histogram. The true quantile lies in the same cell."""
    total = sum(counts)
    if total == 0:
        return None
    target, cumulative, lower = q * total, 0, 0.0
    for bound, count in zip((*LATENCY_BOUNDS, LATENCY_BOUNDS[-1] * 2), counts, strict=True):
        if count and cumulative + count >= target:
            return lower + (bound - lower) * (target - cumulative) / count
        cumulative += count
        lower = bound
    return LATENCY_BOUNDS[-1]
