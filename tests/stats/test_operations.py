"""Operational aggregates and latency quantiles: numpy oracles, merge properties, edge cases."""

from __future__ import annotations

import doctest
import itertools

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.stats import operations as ops_module
from watchkeeper.stats.operations import (
    LATENCY_BOUNDS,
    latency_quantile,
    merge_operations,
    operations,
)

CELLS = len(LATENCY_BOUNDS) + 1


def test_docstring_examples_run() -> None:
    result = doctest.testmod(ops_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def events(latency_ms: list[float | None], **columns: list[object]) -> pa.Table:
    return pa.table({"latency_ms": pa.array(latency_ms, pa.float64()), **columns})


def test_latency_cells_match_a_numpy_histogram_with_prometheus_le_cells() -> None:
    rng = np.random.default_rng(1)
    ms = np.concatenate(
        [rng.lognormal(2.5, 1.5, 5000), np.array(LATENCY_BOUNDS) * 1000.0, [0.0, 25_000.0]]
    )
    agg = operations(events(ms.tolist()))
    seconds = ms / 1000.0
    # oracle: cell i holds (bound[i-1], bound[i]]; the last cell everything above 10 s
    edges = np.array([-np.inf, *LATENCY_BOUNDS, np.inf])
    expected = [
        int(((seconds > lo) & (seconds <= hi)).sum()) for lo, hi in itertools.pairwise(edges)
    ]
    assert agg["latency_counts"] == expected
    assert agg["latency_observed"] == ms.size == sum(expected)
    assert agg["latency_sum"] == pytest.approx(seconds.sum(), rel=1e-12)


def test_errors_count_the_status_and_the_error_field_once_each_event() -> None:
    table = events(
        [1.0, None, float("nan"), 3.0, 4.0],
        status=["ok", "Error", None, "ERROR", "fine"],
        error=[None, "boom", "timeout", None, None],
    )
    agg = operations(table)
    assert agg["count"] == 5
    assert agg["errors"] == 3  # "Error" with an error set counts once; None status is not one
    assert agg["latency_observed"] == 3  # null and NaN latencies are not observed


def test_events_without_operational_fields() -> None:
    agg = operations(pa.table({"prediction_id": ["a", "b"]}))
    assert agg == {
        "count": 2,
        "errors": 0,
        "latency_counts": [0] * CELLS,
        "latency_sum": 0.0,
        "latency_observed": 0,
    }
    assert latency_quantile(agg["latency_counts"], 0.5) is None


def test_merge_with_nothing_is_the_aggregate() -> None:
    agg = operations(events([5.0]))
    assert merge_operations(None, agg) == agg
    assert merge_operations({}, agg) == agg


latencies = st.lists(
    st.one_of(st.none(), st.floats(0.0, 50_000.0, allow_nan=False)), min_size=0, max_size=40
)


@settings(max_examples=60, deadline=None)
@given(latencies, latencies, latencies)
def test_merge_is_the_aggregate_of_the_union_and_associative(
    a: list[float | None], b: list[float | None], c: list[float | None]
) -> None:
    pa_, pb, pc_ = (operations(events(x)) for x in (a, b, c))
    whole = operations(events(a + b + c))
    left = merge_operations(merge_operations(pa_, pb), pc_)
    right = merge_operations(pa_, merge_operations(pb, pc_))
    for merged in (left, right):
        assert merged["count"] == whole["count"]
        assert merged["latency_counts"] == whole["latency_counts"]
        assert merged["latency_observed"] == whole["latency_observed"]
        assert merged["latency_sum"] == pytest.approx(whole["latency_sum"], abs=1e-9)


@pytest.mark.parametrize("q", [0.01, 0.1, 0.5, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quantile_lies_in_the_cell_of_numpy_percentile(q: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    seconds = rng.lognormal(np.log(0.05), 1.0, 2000)
    seconds = seconds[seconds <= LATENCY_BOUNDS[-1]]
    counts = operations(events((seconds * 1000.0).tolist()))["latency_counts"]
    got = latency_quantile(counts, q)
    assert got is not None
    true = float(np.percentile(seconds, 100 * q, method="inverted_cdf"))
    edges = [0.0, *LATENCY_BOUNDS]
    cell = int(np.searchsorted(LATENCY_BOUNDS, true, side="left"))
    assert edges[cell] <= got <= edges[cell + 1], (true, got)


def test_quantile_interpolates_linearly_inside_a_cell() -> None:
    counts = [0] * CELLS
    counts[4] = 4  # four events in (10 ms, 25 ms]
    assert latency_quantile(counts, 0.5) == pytest.approx(0.0175)
    assert latency_quantile(counts, 1.0) == pytest.approx(0.025)
    counts = [0] * CELLS
    counts[-1] = 2  # above the last bound: read as ending at twice it
    assert latency_quantile(counts, 0.5) == pytest.approx(15.0)
