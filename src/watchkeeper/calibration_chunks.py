"""The reference's own consecutive chunks, which calibrate a drift decision to its natural
variation (see ``docs/statistics.md``): how many for a current window of a given size, in
which order, which columns use them and why, and the slices. ``compare()`` and a fitted
``Reference`` both plan them here.

The reference is chunked for every column when it has a timestamp column or when
``reference_chunks`` is given. Otherwise its row order is tested, column by column
(:mod:`watchkeeper.stats.dependence`): a column whose values depend on their row position
(clustered, autocorrelated, seasonal rows) is calibrated on the reference's contiguous chunks
in row order; the others keep the i.i.d. simulation, exactly as without the test.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from watchkeeper.errors import InputError
from watchkeeper.profiles import ColumnSpec, DatasetProfile
from watchkeeper.schema import ColumnSchema, ColumnType, Role, Schema, coerce_column
from watchkeeper.schema_infer import time_sort_key
from watchkeeper.stats.dependence import RowDependence, row_dependence

MAX_REFERENCE_CHUNKS = 50
MIN_REFERENCE_CHUNKS = 4
IID = "i.i.d. simulation"
CHUNKS = "contiguous reference chunks"


def reference_chunk_count(
    n_rows: int, schema: Schema, n_current: int, chunks: int | None, *, ordered: bool = False
) -> int:
    """How many consecutive chunks of the reference measure its natural variation against a
    current window of ``n_current`` rows: ``chunks`` when given; else, when the reference has
    a timestamp column (or ``ordered``: its row order was found informative), about
    ``n_rows / n_current`` (at most MAX_REFERENCE_CHUNKS), or none when that is below
    MIN_REFERENCE_CHUNKS; none without an order."""
    if chunks is not None and chunks < 2:
        raise InputError(f"reference_chunks must be at least 2, got {chunks}")
    if chunks is not None:
        return chunks
    if not schema.by_role(Role.TIMESTAMP) and not ordered:
        return 0
    k = min(MAX_REFERENCE_CHUNKS, n_rows // max(n_current, 1))
    return k if k >= MIN_REFERENCE_CHUNKS else 0


def time_ordered(table: pa.Table, schema: Schema) -> pa.Table:
    """The reference sorted by its timestamp column, if it has one: dates in a form other than
    ISO 8601 (``05/20/1987``) by the dates they read as, month names without a year not at all
    (the row order is kept)."""
    stamps = schema.by_role(Role.TIMESTAMP)
    if not stamps or stamps[0].name not in table.column_names:
        return table
    col = table.column(stamps[0].name)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return table.sort_by(stamps[0].name)
    key = time_sort_key(col)
    return table if key is None else table.take(pc.sort_indices(key))


def chunk_slices(table: pa.Table, k: int) -> list[pa.Table]:
    """``k`` consecutive slices of ``table`` of (nearly) equal size."""
    bounds = np.linspace(0, table.num_rows, k + 1).astype(int)
    return [table.slice(a, b - a) for a, b in itertools.pairwise(bounds)]


def row_cells(table: pa.Table, col: ColumnSchema, spec: ColumnSpec) -> tuple[NDArray[Any], int]:
    """Each row's cell on the frozen bins or categories, in row order (-1 for a missing or
    unparsable value), and the number of cells."""
    values, _ = coerce_column(table, col)
    if col.type == ColumnType.NUMERIC:
        x = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
        edges = np.asarray(spec.edges, dtype=np.float64)
        if not edges.size:  # no finite value in the reference: nothing to test
            return np.full(x.size, -1, dtype=np.int64), 1
        cells = np.searchsorted(edges, x, side="right")
        cells[x == edges[-1]] = len(edges) - 1  # the last interior cell is closed
        cells[~np.isfinite(x)] = -1
        return cells, len(edges) + 1
    cats = list(spec.categories)
    codes = pc.index_in(values, value_set=pa.array(cats, pa.string()))
    codes = pc.if_else(pc.is_null(values), -1, pc.fill_null(codes, len(cats)))
    return np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int64), len(cats) + 1


def row_dependence_of(
    table: pa.Table, profile: DatasetProfile, names: Iterable[str]
) -> dict[str, RowDependence]:
    """The row-order test of each named column that the profile bins."""
    out: dict[str, RowDependence] = {}
    for name in names:
        spec = profile.spec.columns.get(name)
        if spec is None or name not in table.column_names:
            continue
        col = profile.schema.columns[name]
        cells, n_cells = row_cells(table, col, spec)
        out[name] = row_dependence(cells, n_cells, ordered=col.type == ColumnType.NUMERIC)
    return out


def needs_dependence_test(schema: Schema, chunks: int | None) -> bool:
    """Row order is tested only when nothing else says how to chunk the reference."""
    return chunks is None and not schema.by_role(Role.TIMESTAMP)


def dependence_matters(n_rows: int, schema: Schema, n_current: int) -> bool:
    """Whether the row-order test can change the calibration of a window of ``n_current``
    rows: only when the reference holds enough windows of that size to be chunked. (At a
    million rows the test costs more than the rest of ``compare()``; a current frame as large
    as the reference cannot use it.)"""
    return reference_chunk_count(n_rows, schema, n_current, None, ordered=True) > 0


@dataclass(frozen=True)
class ChunkPlan:
    """How each drift column is calibrated against a window: ``count`` reference chunks (0:
    none), used by ``columns`` (``None``: every column), and, per column, the source
    (:data:`IID` or :data:`CHUNKS`) and why."""

    count: int
    columns: frozenset[str] | None
    basis: dict[str, tuple[str, str]] = field(default_factory=dict)

    def uses_chunks(self, name: str) -> bool:
        return self.count > 0 and (self.columns is None or name in self.columns)


def chunk_plan(
    n_rows: int,
    schema: Schema,
    n_current: int,
    chunks: int | None,
    dependence: Mapping[str, RowDependence] | None,
    names: Iterable[str],
) -> ChunkPlan:
    """The plan for a window of ``n_current`` rows; ``names``: the drift columns."""
    names = list(names)
    stamps = schema.by_role(Role.TIMESTAMP)
    if chunks is not None or stamps:
        k = reference_chunk_count(n_rows, schema, n_current, chunks)
        why = (
            f"reference_chunks={chunks} given"
            if chunks is not None
            else f"the reference in order of its timestamp column {stamps[0].name!r}"
        )
        if k:
            return ChunkPlan(k, None, {n: (CHUNKS, why) for n in names})
        short = f"{why}, but it holds fewer than {MIN_REFERENCE_CHUNKS} windows of this size"
        return ChunkPlan(0, None, {n: (IID, short) for n in names})
    if not dependence_matters(n_rows, schema, n_current):
        why = (
            f"row order not tested: the reference holds fewer than {MIN_REFERENCE_CHUNKS} "
            "windows of this size, so it could not be chunked anyway"
        )
        return ChunkPlan(0, None, {n: (IID, why) for n in names})
    dependence = dependence or {}
    dependent = frozenset(n for n in names if n in dependence and dependence[n].dependent)
    k = reference_chunk_count(n_rows, schema, n_current, None, ordered=bool(dependent))
    basis: dict[str, tuple[str, str]] = {}
    for n in names:
        test = dependence.get(n)
        if test is None:
            basis[n] = (IID, "row order not tested")
        elif not test.dependent:
            basis[n] = (IID, f"no dependence in row order ({test.describe()})")
        elif k:
            basis[n] = (CHUNKS, f"rows are dependent ({test.describe()})")
        else:
            basis[n] = (
                IID,
                f"rows are dependent ({test.describe()}), but the reference holds fewer than "
                f"{MIN_REFERENCE_CHUNKS} windows of this size",
            )
    return ChunkPlan(k, dependent, basis)


def dependence_to_dict(dependence: Mapping[str, RowDependence] | None) -> dict[str, Any] | None:
    return None if dependence is None else {n: d.to_dict() for n, d in dependence.items()}
