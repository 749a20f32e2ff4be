"""Cutting a period into chunks: by row count, by number, or by calendar period.

Examples
--------
>>> import pyarrow as pa
>>> t = pa.table({"x": list(range(10))})
>>> [(c.start_index, c.end_index) for c in by_size(t, 4, None)]
[(0, 4), (4, 8), (8, 10)]
>>> [c.rows for c in by_number(t, 3, None)]
[3, 3, 4]
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.errors import InputError


@dataclass(frozen=True)
class Chunk:
    """One chunk: rows ``start_index:end_index`` of the (time-sorted, for periods) data and,
    when the data has a timestamp, the time span it covers."""

    index: int
    key: str
    start_index: int
    end_index: int
    start: Any = None  # a datetime (naive, UTC), or None without a timestamp
    end: Any = None
    table: pa.Table | None = None

    @property
    def rows(self) -> int:
        return self.end_index - self.start_index

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "key": self.key,
            "start_index": self.start_index,
            "end_index": self.end_index,
            "rows": self.rows,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
        }


def times_of(table: pa.Table, timestamp: str | None) -> pa.Array | None:
    """The timestamp column as naive UTC microsecond timestamps, or None without one."""
    if timestamp is None or timestamp not in table.column_names:
        return None
    col = table.column(timestamp).combine_chunks()
    try:
        if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
            return pc.cast(col, pa.timestamp("us"), safe=False)  # ns: to the microsecond
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            try:
                return pc.cast(col, pa.timestamp("us"), safe=False)
            except pa.ArrowInvalid:  # an offset or a "Z": read it as UTC
                return pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC")), pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"timestamp column {timestamp!r}: not readable as times ({exc})") from None
    raise InputError(f"timestamp column {timestamp!r}: {col.type} values are not times")


def row_chunk(index: int, start: int, table: pa.Table, timestamp: str | None) -> Chunk:
    """The chunk of ``table``, rows ``start:start + len(table)`` of the data."""
    end = start + table.num_rows
    first, last = _span(times_of(table, timestamp), 0, table.num_rows)
    return Chunk(index, f"[{start}:{end}]", start, end, first, last, table)


def period_chunk(
    index: int, start: int, table: pa.Table, timestamp: str, multiple: int, unit: str
) -> Chunk:
    """The chunk of one period's rows, time-sorted: rows ``start:start + len(table)`` of the
    time-sorted data; its span is the whole calendar period."""
    times = times_of(table, timestamp)
    assert times is not None and len(times)
    first = pc.floor_temporal(times.slice(0, 1), multiple, unit)[0]
    end = pc.ceil_temporal(first, multiple, unit, ceil_is_strictly_greater=True)
    begin = first.as_py()
    return Chunk(index, begin.isoformat(), start, start + table.num_rows, begin, end.as_py(), table)


def _span(times: pa.Array | None, a: int, b: int) -> tuple[Any, Any]:
    if times is None or b <= a:
        return None, None
    bounds = pc.min_max(times.slice(a, b - a))
    return bounds["min"].as_py(), bounds["max"].as_py()


def _slices(table: pa.Table, bounds: list[int], times: Any) -> list[Chunk]:
    out = []
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        start, end = _span(times, a, b)
        out.append(Chunk(i, f"[{a}:{b}]", a, b, start, end, table.slice(a, b - a)))
    return out


def by_size(table: pa.Table, size: int, timestamp: str | None) -> list[Chunk]:
    """Consecutive chunks of ``size`` rows in row order; the last may be shorter."""
    if size < 1:
        raise InputError(f"chunk_size must be at least 1, got {size}")
    n = table.num_rows
    bounds = [*range(0, n, size), n] if n else [0, 0]
    return _slices(table, bounds, times_of(table, timestamp))


def by_number(table: pa.Table, number: int, timestamp: str | None) -> list[Chunk]:
    """``number`` consecutive chunks of nearly equal size in row order."""
    if number < 1:
        raise InputError(f"chunk_number must be at least 1, got {number}")
    if number > max(table.num_rows, 1):
        raise InputError(f"chunk_number {number} is more than the data's {table.num_rows} rows")
    bounds = np.linspace(0, table.num_rows, number + 1).astype(int).tolist()
    return _slices(table, bounds, times_of(table, timestamp))


UNITS = {
    "s": "second", "min": "minute", "t": "minute", "h": "hour", "d": "day", "w": "week",
    "m": "month", "ms": "month", "me": "month", "q": "quarter", "qs": "quarter",
    "y": "year", "ys": "year", "a": "year",
}  # fmt: skip
UNIT_NAMES = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")


def parse_period(period: str) -> tuple[int, str]:
    """``"1D"`` → (1, "day"), ``"2h"`` → (2, "hour"), ``"W"`` → (1, "week"), ``"month"``…"""
    match = re.fullmatch(r"\s*(\d*)\s*([A-Za-z]+)\s*", period)
    unit = None
    if match:
        word = match.group(2).lower()
        unit = word if word.rstrip("s") in UNIT_NAMES else UNITS.get(word)
        unit = unit.rstrip("s") if unit else None
    if not match or unit is None or match.group(1) == "0":
        raise InputError(
            f"chunk_period {period!r}: use a count and a unit, e.g. 1D, 6h, W, M "
            f"(units: {', '.join(UNIT_NAMES)})"
        )
    return int(match.group(1) or 1), unit


def by_period(table: pa.Table, period: str, timestamp: str | None) -> list[Chunk]:
    """One chunk per calendar ``period`` (``"1D"``, ``"6h"``, ``"W"`` (weeks start on
    Monday), ``"M"``…) of the timestamp column, in time order; periods without rows are
    left out."""
    multiple, unit = parse_period(period)
    if timestamp is None:
        raise InputError("chunk_period needs a timestamp column: pass timestamp= to fit")
    if timestamp not in table.column_names:
        raise InputError(f"chunk_period: the data has no timestamp column {timestamp!r}")
    times = times_of(table, timestamp)
    assert times is not None
    if times.null_count:
        raise InputError(f"timestamp column {timestamp!r}: {times.null_count} rows have no time")
    order = pc.array_sort_indices(times)
    table, times = table.take(order), times.take(order)
    starts_t = pc.floor_temporal(times, multiple, unit)
    codes = starts_t.cast(pa.int64()).to_numpy()
    firsts = [0, *(np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist()] if len(codes) else []
    bounds = [*firsts, len(codes)] if len(codes) else [0, 0]
    out = []
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        if b <= a:
            continue
        start = starts_t[a]
        end = pc.ceil_temporal(start, multiple, unit, ceil_is_strictly_greater=True)
        begin = start.as_py()
        out.append(Chunk(i, begin.isoformat(), a, b, begin, end.as_py(), table.slice(a, b - a)))
    return out
