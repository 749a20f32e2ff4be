"""A Spark frame compared against a reference: the same report as the local comparison of the
same rows, whether through ``watchkeeper.spark.compare``, ``Reference.compare`` or
``Reference.analyze``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import watchkeeper
from watchkeeper import spark as wk_spark
from watchkeeper.reference import Reference


def labelled(rows: int, seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, rows)
    z = rng.normal(0.0, 1.0, rows)
    c = rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2])
    score = 1 / (1 + np.exp(-(x + 0.5 * z)))
    y = (rng.random(rows) < score).astype(np.int64)
    return pa.table(
        {
            "x": x,
            "z": z,
            "c": c.tolist(),
            "y": y,
            "y_hat": (score > 0.5).astype(np.int64),
            "p": score,
            "t": np.arange(rows, dtype=np.int64),
        }
    )


def _same(a: Any, b: Any, path: str = "") -> None:
    """Equal reports: the same keys and values, floats to rounding (sums merged by
    partition add in another order); the time each was made apart."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a.keys() - {"created_at"}:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12), (
            path,
            a,
            b,
        )
    else:
        assert a == b, (path, a, b)


CASES: dict[str, dict[str, Any]] = {
    "drift only": {},
    "with labels": {"target": "y", "prediction": "y_hat", "scores": "p"},
    "attributions": {"prediction": "p", "attributions": True, "multivariate": None},
}


# importing shap (the attributions' explainers) draws matplotlib's warning about its own colours
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.parametrize("case", CASES)
def test_reference_compare_on_a_spark_frame_is_the_local_report(spark: Any, case: str) -> None:
    ref_t, cur_t = labelled(2000, 0), labelled(1500, 1, shift=0.4)
    options = CASES[case]
    labels = "target" in options
    ref = Reference.fit(ref_t, **options)
    sdf = spark.createDataFrame(cur_t).repartition(3)
    rows = sdf.toArrow()  # the rows as Spark holds them (repartition reorders)
    local, remote = ref.compare(rows), ref.compare(sdf)
    _same(local.to_dict(), remote.to_dict())
    assert "x" in remote.drifted_columns
    if labels:
        assert remote.performance is not None
    if options.get("attributions"):  # the surrogate's, on the collected feature columns
        assert remote.attributions is not None


def test_spark_compare_is_watchkeeper_compare(spark: Any) -> None:
    ref_t, cur_t = labelled(1500, 2), labelled(1000, 3, shift=0.3)
    ref_sdf, cur_sdf = spark.createDataFrame(ref_t), spark.createDataFrame(cur_t)
    remote = wk_spark.compare(ref_sdf, cur_sdf, multivariate=None)
    local = watchkeeper.compare(ref_sdf.toArrow(), cur_sdf.toArrow(), multivariate=None)
    _same(local.to_dict(), remote.to_dict())


def test_a_column_only_spark_has_is_reported_new(spark: Any) -> None:
    ref = Reference.fit(labelled(800, 4).drop_columns(["t"]), multivariate=None)
    cur = labelled(500, 5)
    remote = ref.compare(spark.createDataFrame(cur))
    _same(ref.compare(cur).to_dict(), remote.to_dict())
    codes = {f.kind: f.message for f in remote.findings}
    assert "new_columns" in codes and "'t'" in codes["new_columns"]


def test_reference_analyze_takes_a_spark_frame(spark: Any) -> None:
    ref = Reference.fit(labelled(1000, 6), multivariate=None)
    cur = labelled(1200, 7, shift=0.5)
    remote = ref.analyze(spark.createDataFrame(cur), chunk_size=400)
    local = ref.analyze(cur, chunk_size=400)
    _same(local.to_dict(), remote.to_dict())
