"""RegressionAggregate: scikit-learn oracles, merge properties, edge cases, intervals."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.errors import InputError
from watchkeeper.stats.regression import RegressionAggregate as RA

sk = pytest.importorskip("sklearn.metrics")


def value(m: dict[str, Any]) -> float:
    assert m["value"] is not None, m
    return float(m["value"])


def data(n: int, seed: int, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = offset + rng.normal(5.0, 3.0, n)
    return y, y + rng.normal(0.3, 1.0 + 0.1 * np.abs(y - offset), n)


def merged(y: np.ndarray, f: np.ndarray, pieces: int) -> RA:
    chunks = np.array_split(np.arange(len(y)), pieces)
    out = RA.from_arrays(y[chunks[0]], f[chunks[0]])
    for c in chunks[1:]:
        out = out.merge(RA.from_arrays(y[c], f[c]))
    return out


def check_sklearn(m: dict[str, Any], y: np.ndarray, f: np.ndarray, rel: float) -> None:
    want = {
        "mae": sk.mean_absolute_error(y, f),
        "rmse": math.sqrt(sk.mean_squared_error(y, f)),
        "mape": sk.mean_absolute_percentage_error(y, f),
        "r2": sk.r2_score(y, f),
        "mean_error": float(np.mean(f - y)),
    }
    for k, w in want.items():
        assert math.isclose(value(m[k]), w, rel_tol=rel, abs_tol=1e-12), (k, m[k], w)


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e8])
@pytest.mark.parametrize("pieces", [1, 7])
def test_matches_sklearn(offset: float, pieces: int) -> None:
    y, f = data(5000, 1, offset)
    m = merged(y, f, pieces).metrics()
    assert m["task"] == "regression" and m["n"] == 5000 and m["mape_zero_targets"] == 0
    check_sklearn(m, y, f, rel=1e-12)


def test_r2_keeps_precision_on_a_large_offset() -> None:
    """Naive sums of y and y^2 would lose every digit of R^2 here; the shifted sums do not."""
    y, f = data(20_000, 2, offset=1e9)
    m = merged(y, f, 13).metrics()
    assert math.isclose(value(m["r2"]), sk.r2_score(y, f), rel_tol=1e-9)


def test_mape_leaves_zero_targets_out() -> None:
    y, f = data(1000, 3)
    y[::10], f[::10] = 0.0, 1.0
    m = RA.from_arrays(y, f).metrics()
    nz = y != 0
    assert m["mape_zero_targets"] == 100
    assert math.isclose(
        value(m["mape"]), sk.mean_absolute_percentage_error(y[nz], f[nz]), rel_tol=1e-12
    )
    assert "100 rows with y_true == 0 left out" in m["mape"]["reason"]
    assert math.isclose(value(m["mae"]), sk.mean_absolute_error(y, f), rel_tol=1e-12)
    allzero = RA.from_arrays([0.0, 0.0], [1.0, 2.0]).metrics()
    assert allzero["mape"]["value"] is None and "every y_true is 0" in allzero["mape"]["reason"]


def test_nulls_are_skipped() -> None:
    y = np.array([1.0, np.nan, 3.0, 4.0, None], dtype=object)
    f = np.array([1.5, 2.0, np.nan, 4.5, 1.0], dtype=object)
    agg = RA.from_arrays(y, f)
    assert agg.n == 2 and agg.skipped_rows == 3
    assert math.isclose(value(agg.metrics()["mae"]), 0.5)


def test_empty_and_tiny_windows_are_defined() -> None:
    for agg in (RA.from_arrays([], []), RA.from_arrays([np.nan], [1.0]), RA()):
        m = agg.metrics()
        json.dumps(m)
        for k in ("mae", "rmse", "mape", "r2", "mean_error"):
            assert m[k]["value"] is None and "no rows" in m[k]["reason"]
    one = RA.from_arrays([2.0], [3.0]).metrics()
    assert value(one["mae"]) == 1.0 and one["mae"]["ci_low"] is None
    assert "at least 2 rows" in one["mae"]["reason"]
    assert one["r2"]["value"] is None and "at least 2 rows" in one["r2"]["reason"]


def test_constant_target_follows_sklearn() -> None:
    for f in ([3.0, 3.0, 3.0], [3.0, 4.0, 3.0]):
        m = RA.from_arrays([3.0, 3.0, 3.0], f).metrics()
        assert value(m["r2"]) == sk.r2_score([3.0, 3.0, 3.0], f)
        assert "constant" in m["r2"]["reason"]


@pytest.mark.parametrize(
    ("y", "f", "match"),
    [
        ([1.0, 2.0], [1.0], "differ in length"),
        ([[1.0]], [[1.0]], "1-D"),
        (["a"], ["b"], "numeric"),
        ([1.0, np.inf], [1.0, 2.0], "finite"),
        ([1e200, 1.0], [1.0, 1.0], "not finite"),
    ],
)
def test_bad_input(y: Any, f: Any, match: str) -> None:
    with pytest.raises(InputError, match=match):
        RA.from_arrays(y, f)


def test_bad_arguments_and_dicts() -> None:
    agg = RA.from_arrays([1.0, 2.0, 3.0], [1.0, 2.5, 2.0])
    with pytest.raises(InputError, match="confidence"):
        agg.metrics(confidence=0.0)
    with pytest.raises(InputError, match="RegressionAggregate"):
        agg.merge(object())  # type: ignore[arg-type]
    d = json.loads(json.dumps(agg.to_dict()))
    assert RA.from_dict(d) == agg
    for broken in (
        {**d, "kind": "classification"},
        {**d, "version": 2},
        {**d, "n": -1},
        {**d, "n": 2.5},
        {**d, "sum_e2": "x"},
        {**d, "n_ape": 1},
        {k: v for k, v in d.items() if k != "sum_d4"},
    ):
        with pytest.raises(InputError):
            RA.from_dict(broken)


# ------------------------------------------------------------------------ merge properties

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
cell = st.one_of(finite, finite, finite, st.just(float("nan")))
POWER = {"mean_y": 1, "sum_d": 1, "sum_d2": 2, "sum_d3": 3, "sum_d4": 4, "sum_e2": 2}
POWER |= {"sum_e2_d": 3, "sum_e2_d2": 4, "sum_abs_e": 1, "sum_e4": 4, "mean_e": 1, "m2_e": 2}


def assert_close(a: RA, b: RA, scale: float) -> None:
    """Integer parts exactly; float sums to rounding (tolerance scaled by |y|^power)."""
    da, db = a.to_dict(), b.to_dict()
    for k in da:
        if isinstance(da[k], int | str):
            assert da[k] == db[k], k
        elif k in POWER:
            tol = 1e-9 * max(1, a.n) * scale ** POWER[k]
            assert math.isclose(da[k], db[k], rel_tol=1e-9, abs_tol=tol), k
        else:  # APE sums: positive terms, no cancellation
            assert math.isclose(da[k], db[k], rel_tol=1e-9), k


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(cell, cell), max_size=40), st.data())
def test_merge_is_associative_order_free_and_equals_whole(
    rows: list[tuple[float, float]], draw: st.DataObject
) -> None:
    y = np.array([r[0] for r in rows], dtype=float)
    f = np.array([r[1] for r in rows], dtype=float)
    i = draw.draw(st.integers(0, len(rows)))
    j = draw.draw(st.integers(i, len(rows)))
    a, b, c = (RA.from_arrays(y[s], f[s]) for s in (slice(0, i), slice(i, j), slice(j, None)))
    whole = RA.from_arrays(y, f)
    scale = 1.0 + 2.0 * float(np.nanmax(np.abs(np.concatenate([y, f, [0.0]]))))
    for got in (a.merge(b).merge(c), a.merge(b.merge(c)), c.merge(b).merge(a)):
        assert_close(got, whole, scale)


# ------------------------------------------------------------------------ intervals


def test_intervals_contain_the_value() -> None:
    y, f = data(400, 4)
    m = RA.from_arrays(y, f).metrics()
    for k in ("mae", "rmse", "mape", "r2", "mean_error"):
        assert m[k]["ci_low"] < m[k]["value"] < m[k]["ci_high"], k
        assert m[k]["ci_method"] in ("normal", "delta")
    wide = RA.from_arrays(y, f).metrics(confidence=0.99)
    assert wide["r2"]["ci_low"] < m["r2"]["ci_low"]


@pytest.mark.slow
def test_intervals_cover_the_population_values() -> None:
    big_y, big_f = data(400_000, 5)
    truth = {
        "mae": sk.mean_absolute_error(big_y, big_f),
        "rmse": math.sqrt(sk.mean_squared_error(big_y, big_f)),
        "r2": sk.r2_score(big_y, big_f),
        "mean_error": float(np.mean(big_f - big_y)),
    }
    rng = np.random.default_rng(6)
    reps = 400
    hits = dict.fromkeys(truth, 0)
    for _ in range(reps):
        idx = rng.integers(0, len(big_y), 300)
        m = RA.from_arrays(big_y[idx], big_f[idx]).metrics()
        for k, t in truth.items():
            hits[k] += m[k]["ci_low"] <= t <= m[k]["ci_high"]
    for k, h in hits.items():
        assert 0.91 <= h / reps <= 0.98, (k, h / reps)
