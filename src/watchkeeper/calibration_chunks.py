"""The reference's own consecutive chunks, which calibrate a drift decision to its natural
variation (see ``docs/statistics.md``): how many for a current window of a given size, in
which order, and the slices. ``compare()`` and a fitted ``Reference`` both cut them here."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa

from watchkeeper.errors import InputError
from watchkeeper.schema import Role, Schema

MAX_REFERENCE_CHUNKS = 50
MIN_REFERENCE_CHUNKS = 4


def reference_chunk_count(n_rows: int, schema: Schema, n_current: int, chunks: int | None) -> int:
    """How many consecutive chunks of the reference measure its natural variation against a
    current window of ``n_current`` rows: ``chunks`` when given; else, when the reference has
    a timestamp column, about ``n_rows / n_current`` (at most MAX_REFERENCE_CHUNKS), or none
    when that is below MIN_REFERENCE_CHUNKS; none without a time order."""
    if chunks is not None and chunks < 2:
        raise InputError(f"reference_chunks must be at least 2, got {chunks}")
    if chunks is not None:
        return chunks
    if not schema.by_role(Role.TIMESTAMP):
        return 0
    k = min(MAX_REFERENCE_CHUNKS, n_rows // max(n_current, 1))
    return k if k >= MIN_REFERENCE_CHUNKS else 0


def time_ordered(table: pa.Table, schema: Schema) -> pa.Table:
    """The reference sorted by its timestamp column, if it has one."""
    stamps = schema.by_role(Role.TIMESTAMP)
    if stamps and stamps[0].name in table.column_names:
        return table.sort_by(stamps[0].name)
    return table


def chunk_slices(table: pa.Table, k: int) -> list[pa.Table]:
    """``k`` consecutive slices of ``table`` of (nearly) equal size."""
    bounds = np.linspace(0, table.num_rows, k + 1).astype(int)
    return [table.slice(a, b - a) for a, b in itertools.pairwise(bounds)]
