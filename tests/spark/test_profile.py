"""``watchkeeper.spark.profile``: a Spark frame profiled partition by partition on the
executors equals the local profile of the same rows, exactly on counts, histograms, nulls,
min/max and sums, to rounding on the moments, and within the KLL rank error on quantiles."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import watchkeeper
from watchkeeper import spark as wk_spark
from watchkeeper.errors import InputError
from watchkeeper.stats.categorical import CategoricalProfile
from watchkeeper.stats.numeric import NumericProfile


def frame(rows: int, seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, rows)
    nulls = rng.random(rows) < 0.05
    cats = rng.choice(["a", "b", "c", "d", "e"], rows, p=[0.4, 0.3, 0.2, 0.05, 0.05])
    return pa.table(
        {
            "x": pa.array(x, mask=nulls),
            "n": pa.array(rng.integers(0, 50, rows), pa.int64()),
            "c": pa.array(cats.tolist(), mask=cats == "e"),
        }
    )


def _sdf(spark: Any, table: pa.Table, partitions: int) -> Any:
    return spark.createDataFrame(table).repartition(partitions)


@pytest.mark.parametrize("partitions", [1, 3])
def test_the_spark_profile_equals_the_local_profile(spark: Any, partitions: int) -> None:
    ref = watchkeeper.profile(frame(3000, 0))
    cur = frame(4000, 1, shift=0.3)
    sdf = _sdf(spark, cur, partitions)
    # the oracle: the local profiler on the very rows Spark holds (repartition reorders)
    local = watchkeeper.profile(sdf.toArrow(), schema=ref.schema, spec=ref.spec)
    remote = wk_spark.profile(sdf, ref)

    assert remote.rows == local.rows == len(cur)
    assert remote.columns.keys() == local.columns.keys() == {"x", "n", "c"}
    for name in ("x", "n"):
        r, lo = remote[name], local[name]
        assert isinstance(r, NumericProfile) and isinstance(lo, NumericProfile)
        assert (r.count, r.nulls, r.non_finite) == (lo.count, lo.nulls, lo.non_finite)
        assert np.array_equal(r.counts, lo.counts)
        assert (r.minimum, r.maximum) == (lo.minimum, lo.maximum)
        assert r.mean == pytest.approx(lo.mean, rel=1e-12)
        assert r.m2 == pytest.approx(lo.m2, rel=1e-10)
        np.testing.assert_allclose(r.sums, lo.sums, rtol=1e-12)
        # quantiles: within the sketch's documented rank error of the exact ranks
        values = np.sort(cur[name].drop_null().to_numpy().astype(float))
        eps = r.kll.normalized_rank_error(False)
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):
            # the ranks the answer spans (an integer column has ties)
            value = r.quantile(q)
            low = np.searchsorted(values, value, side="left")
            high = np.searchsorted(values, value, side="right")
            assert low / values.size - eps <= q <= high / values.size + eps, (name, q)
    rc, lc = remote["c"], local["c"]
    assert isinstance(rc, CategoricalProfile) and isinstance(lc, CategoricalProfile)
    assert np.array_equal(rc.counts, lc.counts)
    assert (rc.count, rc.nulls, rc.type_errors) == (lc.count, lc.nulls, lc.type_errors)
    # the oracle of the oracle: direct counts on the pandas frame
    assert rc.count + rc.nulls == len(cur) and rc.nulls == cur["c"].null_count
    assert remote["x"].nulls == cur["x"].null_count


def test_an_empty_frame_and_missing_columns(spark: Any) -> None:
    ref = watchkeeper.profile(frame(500, 0))
    empty = spark.createDataFrame(frame(10, 2)).limit(0)
    prof = wk_spark.profile(empty, ref)
    assert prof.rows == 0 and prof["x"].count == 0
    only_x = spark.createDataFrame(frame(300, 3).select(["x"]))
    prof = wk_spark.profile(only_x, ref)
    local = watchkeeper.profile(frame(300, 3).select(["x"]), schema=ref.schema, spec=ref.spec)
    assert prof.rows == local.rows == 300
    assert prof.missing_columns == local.missing_columns == ["n", "c"]


def test_bad_input_names_the_argument(spark: Any) -> None:
    ref = watchkeeper.profile(frame(200, 0))
    with pytest.raises(InputError, match=r"data: expected a pyspark\.sql\.DataFrame"):
        wk_spark.profile(frame(10, 1), ref)
    with pytest.raises(InputError, match="schema: required"):
        wk_spark.profile(spark.createDataFrame(frame(10, 1)), ref.spec)


def test_a_frame_without_a_profiled_column_counts_its_rows(spark: Any) -> None:
    ref = watchkeeper.profile(frame(200, 0))
    other = spark.createDataFrame(pa.table({"z": list(range(37))}))
    prof = wk_spark.profile(other, ref)
    assert prof.rows == 37 and prof.missing_columns == ["x", "n", "c"] and not prof.columns
