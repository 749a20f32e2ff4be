"""Profiles of Spark DataFrames: each partition profiled where it lives, the profiles merged.

``profile(sdf, reference)`` profiles a Spark DataFrame on a reference's frozen spec with
``mapInArrow``: every partition's Arrow batches are profiled by the local profiler
(:func:`watchkeeper.profile_table`, the same code), the partition's profiles merged and
serialised (:meth:`~watchkeeper.DatasetProfile.to_bytes`, a few kilobytes whatever the rows),
and the partitions' profiles merged on the driver. Profiles merge exactly on counts, nulls,
histograms, sums and min/max, on mean and variance up to floating-point rounding, and within
the KLL sketch's documented rank error on quantiles (``kll.normalized_rank_error``), so the
result is that of ``watchkeeper.profile`` on the same rows.

``compare(ref_sdf, cur_sdf, **options)`` and ``Reference.compare(cur_sdf)`` return the
report of the local :func:`watchkeeper.compare` on the same rows. The per-column drift and data
quality come from the profile computed on the executors; the sections that read rows (the
performance and its estimate and the failing slices when a target and prediction are given,
the multivariate check when on) get the columns they read collected to the driver. With
``multivariate=None`` and no target, nothing but the profiles leaves the executors.

PySpark is optional: ``pip install 'watchkeeper[spark]'``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from watchkeeper.errors import InputError
from watchkeeper.io import to_table
from watchkeeper.profiles import DatasetProfile, ProfileSpec, profile_table
from watchkeeper.schema import Schema

if TYPE_CHECKING:
    from watchkeeper.reference import Reference
    from watchkeeper.report import Report

__all__ = ["compare", "is_spark_frame", "profile", "to_arrow"]

PROFILE_FIELD = "profile"
# the rows profiled at once in a partition: Spark hands out batches of 10,000 rows
# (spark.sql.execution.arrow.maxRecordsPerBatch), and one profile per batch and a merge per
# batch would cost more than the profiling; batches are joined up to this many rows first
ROWS_PER_PROFILE = 250_000


def is_spark_frame(data: object) -> bool:
    """Whether ``data`` is a PySpark DataFrame (classic or Spark Connect), told without
    importing pyspark."""
    return type(data).__module__.startswith("pyspark.sql") and hasattr(data, "mapInArrow")


def _require_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"pyspark is not installed ({exc}); install it with pip install 'watchkeeper[spark]'"
        ) from None


def _check_frame(sdf: object, name: str) -> Any:
    _require_pyspark()
    if not is_spark_frame(sdf):
        raise InputError(f"{name}: expected a pyspark.sql.DataFrame, got {type(sdf).__name__}")
    return sdf


def _partition_profiles(
    batches: Iterator[pa.RecordBatch], schema: Schema, spec: ProfileSpec
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: one serialised profile per non-empty partition."""
    merged: DatasetProfile | None = None
    held: list[pa.RecordBatch] = []

    def profile_held() -> None:
        nonlocal merged
        table = to_table(pa.Table.from_batches(held), dictionary_strings=True)
        held.clear()
        part = profile_table(table, schema, spec, threads=1)
        merged = part if merged is None else merged.merge(part)

    for batch in batches:
        if batch.num_rows:
            held.append(batch)
        if sum(b.num_rows for b in held) >= ROWS_PER_PROFILE:
            profile_held()
    if held:
        profile_held()
    if merged is not None:
        yield pa.RecordBatch.from_pydict(
            {PROFILE_FIELD: [merged.to_bytes()]}, schema=pa.schema([(PROFILE_FIELD, pa.binary())])
        )


def _schema_and_spec(
    reference: Reference | DatasetProfile | ProfileSpec, schema: Schema | None
) -> tuple[Schema, ProfileSpec]:
    if isinstance(reference, ProfileSpec):
        if schema is None:
            raise InputError("schema: required when profiling on a bare ProfileSpec")
        return schema, reference
    if isinstance(reference, DatasetProfile):
        return schema or reference.schema, reference.spec
    prof = getattr(reference, "profile", None)
    if isinstance(prof, DatasetProfile):  # a fitted Reference
        return schema or prof.schema, prof.spec
    raise InputError(
        "reference: expected a Reference, a DatasetProfile or a ProfileSpec, "
        f"got {type(reference).__name__}"
    )


def profile(
    sdf: Any,
    reference: Reference | DatasetProfile | ProfileSpec,
    *,
    schema: Schema | None = None,
) -> DatasetProfile:
    """The profile of the Spark DataFrame ``sdf`` on the frozen spec of ``reference`` (a
    fitted :class:`~watchkeeper.Reference`, its profile, or a spec with ``schema``),
    computed partition by partition on the executors and merged on the driver."""
    _check_frame(sdf, "data")
    schema, spec = _schema_and_spec(reference, schema)
    wanted = [c for c in spec.columns if c in sdf.columns]
    if not wanted:  # no column to profile: the rows are counted, every column is missing
        nothing = profile_table(_empty_arrow(sdf), schema, spec, threads=1)
        nothing.rows = int(sdf.count())
        return nothing
    frame = sdf.select(*wanted)

    def per_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return _partition_profiles(batches, schema, spec)

    with warnings.catch_warnings():
        # mapInArrow is built on pandas_udf, which warns of pandas >= 3 though no pandas
        # is used on this path: Arrow batches in, Arrow batches out
        warnings.filterwarnings(
            "ignore", "PySpark does not yet fully support pandas", FutureWarning
        )
        rows = frame.mapInArrow(per_partition, f"{PROFILE_FIELD} binary").collect()
    parts = [DatasetProfile.from_bytes(bytes(row[PROFILE_FIELD])) for row in rows]
    if not parts:  # no rows at all: the profile of an empty table
        return profile_table(_empty_arrow(frame), schema, spec, threads=1)
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    missing = set(merged.missing_columns)  # in the spec's order, as the local profile has them
    merged.missing_columns = [c for c in spec.columns if c in missing]
    return merged


def _empty_arrow(sdf: Any) -> pa.Table:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_table(to_arrow_schema(sdf.schema).empty_table(), dictionary_strings=True)


def to_arrow(sdf: Any, columns: Sequence[str] | None = None) -> pa.Table:
    """The rows of ``sdf`` (``columns`` of them: all when None) as an Arrow table on the
    driver, in the frame's row order."""
    _check_frame(sdf, "data")
    frame = sdf if columns is None else sdf.select(*columns)
    if columns is not None and not columns:
        return pa.table({"_": pa.nulls(int(sdf.count()))}).select([])
    to = getattr(frame, "toArrow", None)  # Spark 4; older versions: the private collector
    table = to() if to is not None else pa.Table.from_batches(frame._collect_as_arrow())
    return to_table(table, dictionary_strings=True)


def compare(ref_sdf: Any, cur_sdf: Any, **options: Any) -> Report:
    """The report of ``cur_sdf`` against ``ref_sdf``: that of ``watchkeeper.compare`` on the
    same rows (the options are its options). The reference is fitted on the driver
    (:meth:`Reference.fit`: its rows are what calibrates the thresholds); the current frame
    is profiled on the executors."""
    from watchkeeper.reference import Reference

    _check_frame(ref_sdf, "reference")
    _check_frame(cur_sdf, "current")
    return Reference.fit(to_arrow(ref_sdf), **options).compare(cur_sdf)
