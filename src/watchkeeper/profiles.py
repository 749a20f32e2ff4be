"""Dataset profiles: one mergeable profile per column, on bins frozen from a reference.

``profile_reference`` freezes the bins of every profiled column from the reference
(equal-mass quantile edges for numeric columns, the most frequent categories for categorical
ones) and profiles it; ``profile_table`` then profiles any table on that spec in one
vectorised pass per column.
Profiles of the same spec merge: per batch, per time bucket, per partition.

Examples
--------
>>> import pyarrow as pa
>>> t = pa.table({"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "b", "a", "a"]})
>>> p = profile(t)
>>> p.rows, p["x"].count, p["c"].counts.tolist()
(4, 4, [3, 1, 0])
>>> head, tail = (profile_table(part, p.schema, p.spec) for part in (t.slice(0, 2), t.slice(2)))
>>> head.merge(tail)["c"].counts.tolist() == p["c"].counts.tolist()
True
"""

from __future__ import annotations

import json
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from watchkeeper.errors import InputError, ProfileMismatchError
from watchkeeper.io import to_table
from watchkeeper.schema import ColumnSchema, ColumnType, Role, Schema, coerce_column, infer_schema
from watchkeeper.stats.categorical import (
    DEFAULT_MAX_CATEGORIES,
    CategoricalProfile,
    string_dictionary,
    top_of_counts,
    value_counts,
)
from watchkeeper.stats.numeric import (
    DEFAULT_BINS,
    DEFAULT_KLL_K,
    NumericProfile,
    frozen_edges,
    sort_finite,
)

ColumnProfile = NumericProfile | CategoricalProfile
MAGIC = b"WKP1"
PROFILED_TYPES = (ColumnType.NUMERIC, ColumnType.CATEGORICAL)


@dataclass(frozen=True)
class ColumnSpec:
    """Frozen bins of one column: ``edges`` (numeric) or ``categories`` (categorical)."""

    name: str
    type: str
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()


@dataclass
class ProfileSpec:
    """The frozen bins of every profiled column, and the sketch sizes."""

    columns: dict[str, ColumnSpec]
    kll_k: int = DEFAULT_KLL_K

    def to_dict(self) -> dict[str, Any]:
        return {
            "kll_k": self.kll_k,
            "columns": {
                n: {"type": c.type, "edges": list(c.edges), "categories": list(c.categories)}
                for n, c in self.columns.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileSpec:
        cols = {
            n: ColumnSpec(n, c["type"], tuple(c["edges"]), tuple(c["categories"]))
            for n, c in data["columns"].items()
        }
        return cls(columns=cols, kll_k=int(data.get("kll_k", DEFAULT_KLL_K)))


def profiled_columns(schema: Schema) -> list[ColumnSchema]:
    """Columns that get a statistical profile: numeric and categorical ones of any role but
    ``ignored``."""
    return [
        c for c in schema.columns.values() if c.type in PROFILED_TYPES and c.role != Role.IGNORED
    ]


@dataclass
class DatasetProfile:
    """Profiles of every column of a dataset, on one spec."""

    rows: int
    columns: dict[str, ColumnProfile]
    schema: Schema
    spec: ProfileSpec
    missing_columns: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> ColumnProfile:
        return self.columns[name]

    def merge(self, other: DatasetProfile) -> DatasetProfile:
        """A profile of both datasets; columns absent from one side keep the other's profile."""
        if self.spec.to_dict() != other.spec.to_dict():
            raise ProfileMismatchError("cannot merge dataset profiles built on different specs")
        merged: dict[str, ColumnProfile] = {}
        for name in self.spec.columns:
            mine, theirs = self.columns.get(name), other.columns.get(name)
            if mine is not None and theirs is not None:
                merged[name] = mine.merge(theirs)  # type: ignore[arg-type]
            elif mine is not None or theirs is not None:
                merged[name] = mine if mine is not None else theirs  # type: ignore[assignment]
        missing = sorted(set(self.missing_columns) & set(other.missing_columns))
        return DatasetProfile(self.rows + other.rows, merged, self.schema, self.spec, missing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "schema": self.schema.to_dict(),
            "spec": self.spec.to_dict(),
            "missing_columns": self.missing_columns,
            "columns": {n: p.to_dict() for n, p in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetProfile:
        columns: dict[str, ColumnProfile] = {}
        for name, col in data["columns"].items():
            kind = NumericProfile if col["kind"] == "numeric" else CategoricalProfile
            columns[name] = kind.from_dict(col)
        return cls(
            rows=int(data["rows"]),
            columns=columns,
            schema=Schema.from_dict(data["schema"]),
            spec=ProfileSpec.from_dict(data["spec"]),
            missing_columns=list(data.get("missing_columns", [])),
        )

    def to_bytes(self) -> bytes:
        """Compact serialisation: a magic header and zlib-compressed JSON. Level 1: the
        service rewrites a window's profile with every batch, and level 6 compresses these
        only a little better at several times the cost."""
        return MAGIC + zlib.compress(json.dumps(self.to_dict()).encode("utf-8"), 1)

    @classmethod
    def from_bytes(cls, blob: bytes) -> DatasetProfile:
        if not blob.startswith(MAGIC):
            raise InputError("not a watchkeeper profile: the header is missing")
        text = zlib.decompress(blob[len(MAGIC) :])
        try:
            data = orjson.loads(text)  # the same JSON, parsed several times faster
        except orjson.JSONDecodeError:  # NaN, which json.dumps writes and orjson refuses
            data = json.loads(text)
        return cls.from_dict(data)


@dataclass
class _Pending:
    """A column profiled but for its quantile sketch (see ``profile_table``)."""

    profile: ColumnProfile
    finite: np.ndarray[Any, np.dtype[np.float64]] | None = None


def _numeric_values(table: pa.Table, col: ColumnSchema) -> tuple[Any, int, int, int]:
    raw = table.column(col.name) if col.name in table.column_names else None
    if raw is not None and pa.types.is_floating(raw.type):  # fast path: NaN already means null
        type_errors = 0
        arr = raw.to_numpy().astype(np.float64, copy=False)
    else:
        values, type_errors = coerce_column(table, col)
        arr = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    # Arrow hands out its own memory (and a DataFrame's, which it may share) read-only; a
    # writable array is one made here (chunks joined, nulls filled, a type cast): sort it
    # where it is rather than copy it first
    finite, n_nan, n_inf = sort_finite(arr, in_place=arr.flags.writeable)
    return finite, n_nan, n_inf, type_errors


def _profile_column(
    table: pa.Table,
    col: ColumnSchema,
    spec: ColumnSpec | None,
    kll_k: int,
    bins: int,
    max_categories: int,
) -> tuple[ColumnSpec, _Pending]:
    """Profile one column on ``spec``, or freeze a spec from it first when ``spec`` is None."""
    if col.type == ColumnType.NUMERIC:
        finite, n_nan, n_inf, type_errors = _numeric_values(table, col)
        if spec is None:
            spec = ColumnSpec(col.name, "numeric", edges=tuple(frozen_edges(finite, bins).tolist()))
        prof = NumericProfile.from_sorted_finite(
            finite,
            np.asarray(spec.edges),
            nulls=n_nan,
            type_errors=type_errors,
            non_finite=n_inf,
            kll_k=kll_k,
            sketch=False,
        )
        return spec, _Pending(prof, finite)
    raw = table.column(col.name) if col.name in table.column_names else None
    if raw is not None and string_dictionary(raw.type):
        values, type_errors = raw, 0  # fast path: count the dictionary codes, decode the keys
    else:
        values, type_errors = coerce_column(table, col)
    keys, counted, nulls = value_counts(values)
    if spec is None:
        cats = top_of_counts(keys, counted, max_categories)
        spec = ColumnSpec(col.name, "categorical", categories=cats)
    cat = CategoricalProfile.from_counts(
        keys, counted, spec.categories, nulls=nulls, type_errors=type_errors
    )
    return spec, _Pending(cat)


def _profile_all(
    table: pa.Table,
    columns: list[ColumnSchema],
    spec: ProfileSpec | None,
    on_column: Callable[[str], None] | None,
    threads: int,
    bins: int = DEFAULT_BINS,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    kll_k: int = DEFAULT_KLL_K,
    on_profile: Callable[[str, ColumnProfile], None] | None = None,
) -> tuple[ProfileSpec, dict[str, ColumnProfile]]:
    kll_k = spec.kll_k if spec is not None else kll_k

    def work(col: ColumnSchema) -> tuple[ColumnSpec, _Pending]:
        col_spec = None if spec is None else spec.columns[col.name]
        return _profile_column(table, col, col_spec, kll_k, bins, max_categories)

    # Sorting, binning and counting release the GIL and run in worker threads; the KLL
    # update holds it, so this thread fills each sketch as its column comes back, overlapping
    # with the workers' numpy work on the next columns.
    pool = ThreadPoolExecutor(threads) if threads > 1 and table.num_rows >= 100_000 else None
    results: list[tuple[ColumnSpec, _Pending]] = []
    profiles: dict[str, ColumnProfile] = {}
    pending_work: deque[Future[tuple[ColumnSpec, _Pending]]] = deque()
    todo = iter(columns)
    try:
        for col in columns:
            if pool is None:
                col_spec, pending = work(col)
            else:  # keep at most threads + 1 columns in flight: bounded extra memory
                while len(pending_work) < threads + 1 and (nxt := next(todo, None)) is not None:
                    pending_work.append(pool.submit(work, nxt))
                col_spec, pending = pending_work.popleft().result()
            kll = getattr(pending.profile, "kll", None)
            if kll is not None and pending.finite is not None and pending.finite.size:
                kll.update(pending.finite)
            pending.finite = None
            results.append((col_spec, pending))
            profiles[col.name] = pending.profile
            if on_column is not None:
                on_column(col.name)
            if on_profile is not None:
                on_profile(col.name, pending.profile)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    frozen = spec or ProfileSpec(
        {c.name: s for c, (s, _) in zip(columns, results, strict=True)}, kll_k=kll_k
    )
    return frozen, profiles


def profile_table(
    table: pa.Table,
    schema: Schema,
    spec: ProfileSpec,
    *,
    on_column: Callable[[str], None] | None = None,
    threads: int = 2,
    on_profile: Callable[[str, ColumnProfile], None] | None = None,
) -> DatasetProfile:
    """Profile every spec column present in ``table``; absent ones are listed, not fatal.

    ``on_profile(name, profile)`` is called on the calling thread as each column's profile
    is done (in column order), while the profiling threads go on with the next columns."""
    present = [c for c in profiled_columns(schema) if c.name in spec.columns]
    missing = [c.name for c in present if c.name not in table.column_names]
    todo = [c for c in present if c.name in table.column_names]
    _, profiles = _profile_all(table, todo, spec, on_column, threads, on_profile=on_profile)
    return DatasetProfile(table.num_rows, profiles, schema, spec, missing)


def profile_reference(
    table: pa.Table,
    schema: Schema,
    *,
    bins: int = DEFAULT_BINS,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    kll_k: int = DEFAULT_KLL_K,
    on_column: Callable[[str], None] | None = None,
    threads: int = 2,
) -> DatasetProfile:
    """Freeze the bins from ``table`` (equal-mass quantile edges, the most frequent categories)
    and profile it on them, in one pass over each column. ``.spec`` of the result profiles
    any later data on the same bins (and sketch size: ``kll_k=0`` for no quantile sketch)."""
    columns = profiled_columns(schema)
    spec, profiles = _profile_all(
        table,
        columns,
        None,
        on_column,
        threads,
        bins=bins,
        max_categories=max_categories,
        kll_k=kll_k,
    )
    return DatasetProfile(table.num_rows, profiles, schema, spec, [])


def profile(
    data: object,
    *,
    schema: Schema | None = None,
    spec: ProfileSpec | None = None,
    bins: int = DEFAULT_BINS,
) -> DatasetProfile:
    """Profile a DataFrame, Arrow table or file; bins frozen from the data itself unless a spec
    (typically the reference's) is given."""
    table = to_table(data, dictionary_strings=True)
    schema = schema or infer_schema(table)
    if spec is None:
        return profile_reference(table, schema, bins=bins)
    return profile_table(table, schema, spec)
