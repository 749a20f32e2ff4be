"""Dataset profiles: one mergeable profile per column, on bins frozen from a reference.

``build_spec`` freezes the bins of every profiled column from the reference (equal-mass
quantile edges for numeric columns, the most frequent categories for categorical ones);
``profile_table`` then profiles any table on that spec in one vectorised pass per column.
Profiles of the same spec merge: per batch, per time bucket, per partition.

Examples
--------
>>> import pyarrow as pa
>>> t = pa.table({"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "b", "a", "a"]})
>>> p = profile(t)
>>> p.rows, p["x"].count, p["c"].counts.tolist()
(4, 4, [3, 1, 0])
>>> q = profile_table(t.slice(0, 2), p.schema, p.spec).merge(profile_table(t.slice(2), p.schema, p.spec))
>>> q["c"].counts.tolist() == p["c"].counts.tolist()
True
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from watchkeeper.errors import InputError, ProfileMismatchError
from watchkeeper.io import to_table
from watchkeeper.schema import ColumnSchema, ColumnType, Schema, coerce_column, infer_schema
from watchkeeper.stats.categorical import DEFAULT_MAX_CATEGORIES, CategoricalProfile, top_categories
from watchkeeper.stats.numeric import DEFAULT_BINS, DEFAULT_KLL_K, NumericProfile, quantile_edges

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
    """Columns that get a statistical profile: numeric and categorical ones of any role."""
    return [c for c in schema.columns.values() if c.type in PROFILED_TYPES]


def build_spec(
    table: pa.Table,
    schema: Schema,
    *,
    bins: int = DEFAULT_BINS,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    kll_k: int = DEFAULT_KLL_K,
) -> ProfileSpec:
    """Freeze bin edges and categories from a reference table."""
    cols: dict[str, ColumnSpec] = {}
    for col in profiled_columns(schema):
        values, _ = coerce_column(table, col)
        if col.type == ColumnType.NUMERIC:
            arr = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            finite = np.sort(arr[np.isfinite(arr)])
            edges = tuple(quantile_edges(finite, bins).tolist())
            cols[col.name] = ColumnSpec(col.name, "numeric", edges=edges)
        else:
            cols[col.name] = ColumnSpec(
                col.name, "categorical", categories=top_categories(values, max_categories)
            )
    return ProfileSpec(cols, kll_k=kll_k)


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
        """Compact serialisation: a magic header and zlib-compressed JSON."""
        return MAGIC + zlib.compress(json.dumps(self.to_dict()).encode("utf-8"), 6)

    @classmethod
    def from_bytes(cls, blob: bytes) -> DatasetProfile:
        if not blob.startswith(MAGIC):
            raise InputError("not a watchkeeper profile: the header is missing")
        return cls.from_dict(json.loads(zlib.decompress(blob[len(MAGIC) :])))


def _profile_column(
    table: pa.Table, col: ColumnSchema, spec: ColumnSpec, kll_k: int
) -> ColumnProfile:
    values, type_errors = coerce_column(table, col)
    if spec.type == "numeric":
        arr = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        return NumericProfile.build(
            arr, np.asarray(spec.edges), type_errors=type_errors, kll_k=kll_k
        )
    return CategoricalProfile.build(values, spec.categories, type_errors=type_errors)


def profile_table(
    table: pa.Table,
    schema: Schema,
    spec: ProfileSpec,
    *,
    on_column: Callable[[str], None] | None = None,
    threads: int = 2,
) -> DatasetProfile:
    """Profile every spec column present in ``table``; absent ones are listed, not fatal."""
    present = [c for c in profiled_columns(schema) if c.name in spec.columns]
    missing = [c.name for c in present if c.name not in table.column_names]
    todo = [c for c in present if c.name in table.column_names]

    def work(col: ColumnSchema) -> tuple[str, ColumnProfile]:
        result = _profile_column(table, col, spec.columns[col.name], spec.kll_k)
        if on_column is not None:
            on_column(col.name)
        return col.name, result

    if threads > 1 and table.num_rows >= 100_000:
        with ThreadPoolExecutor(threads) as pool:
            done = dict(pool.map(work, todo))
    else:
        done = dict(map(work, todo))
    ordered = {c.name: done[c.name] for c in todo}
    return DatasetProfile(table.num_rows, ordered, schema, spec, missing)


def profile(
    data: object,
    *,
    schema: Schema | None = None,
    spec: ProfileSpec | None = None,
    bins: int = DEFAULT_BINS,
) -> DatasetProfile:
    """Profile a DataFrame, Arrow table or file; bins frozen from the data itself unless a spec
    (typically the reference's) is given."""
    table = to_table(data)
    schema = schema or infer_schema(table)
    spec = spec or build_spec(table, schema, bins=bins)
    return profile_table(table, schema, spec)
