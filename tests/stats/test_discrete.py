"""A discrete reference: each of its values in a cell of its own, the gaps between them apart.

Equal-mass edges on an integer column put ``3`` and ``3.01`` in one cell, so a shift smaller
than the value step moved nothing between cells and no statistic could see it.
``numeric.discrete_edges`` gives the gaps cells of their own (empty in the reference), which
the calibration treats as it treats the open ends (one pseudo-count each)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

import watchkeeper
from watchkeeper.charts import numeric_distribution_figure
from watchkeeper.stats.drift import column_drift
from watchkeeper.stats.numeric import (
    DISCRETE_MIN_ROWS,
    NumericProfile,
    discrete_edges,
    frozen_edges,
    quantile_edges,
)

ALPHA = 0.05
TRIALS = 400


def test_each_value_and_each_gap_gets_a_cell() -> None:
    rng = np.random.default_rng(0)
    ref = rng.poisson(4, 5000).astype(np.float64)
    edges = frozen_edges(np.sort(ref))
    values, counts = np.unique(ref, return_counts=True)  # the oracle
    assert edges.size == 2 * values.size
    assert np.array_equal(edges[0::2], values)
    assert np.array_equal(edges[1::2], np.nextafter(values, np.inf))
    profile = NumericProfile.build(ref, edges)
    assert np.array_equal(profile.counts[1:-1:2], counts)  # {v1}, {v2}, ... {vK}
    assert not profile.counts[2:-1:2].any()  # (v1, v2), ... (vK-1, vK): empty
    assert profile.counts[0] == profile.counts[-1] == 0
    between = NumericProfile.build(np.array([values[1] + 0.5, values[-1], values[-1] + 1]), edges)
    assert between.counts[4] == 1  # in (v2, v3)
    assert between.counts[-2] == 1 and between.counts[-1] == 1  # {vK}, above vK


def test_continuous_small_and_many_valued_references_keep_equal_mass_edges() -> None:
    rng = np.random.default_rng(1)
    continuous = np.sort(rng.normal(size=5000))
    assert discrete_edges(continuous) is None
    assert np.array_equal(frozen_edges(continuous), quantile_edges(continuous))
    few_rows = np.sort(rng.integers(0, 10, size=10 * DISCRETE_MIN_ROWS - 1)).astype(float)
    if np.unique(few_rows).size == 10:  # fewer than DISCRETE_MIN_ROWS rows per value
        assert discrete_edges(few_rows) is None
    many_values = np.sort(rng.integers(0, 60, size=20_000)).astype(float)  # 2 * 60 - 1 > 100
    assert discrete_edges(many_values, bins=100) is None
    assert discrete_edges(many_values, bins=200) is not None
    assert discrete_edges(np.full(100, 3.0)) is None  # a constant keeps its point bin


def _integer_table(rng: np.random.Generator, n: int, shift: float = 0.0) -> pa.Table:
    return pa.table({"x": rng.poisson(6, n).astype(np.float64) + shift})


@pytest.mark.parametrize("shift", [0.01, 0.5])
def test_a_shift_smaller_than_the_value_step_is_found(shift: float) -> None:
    rng = np.random.default_rng(2)
    ref = watchkeeper.Reference.fit(_integer_table(rng, 20_000), multivariate=None)
    clean = ref.compare(_integer_table(rng, 1000))
    shifted = ref.compare(_integer_table(rng, 1000, shift))
    assert clean.drifted_columns == []
    assert shifted.drifted_columns == ["x"]


def test_false_alarm_rate_of_a_discrete_column_is_what_was_asked_for() -> None:
    rng = np.random.default_rng(3)
    alarms = 0
    cache: dict = {}
    for _ in range(TRIALS):
        ref, cur = rng.poisson(3, 4000).astype(float), rng.poisson(3, 1000).astype(float)
        edges = frozen_edges(np.sort(ref))
        assert discrete_edges(np.sort(ref)) is not None
        r, c = NumericProfile.build(ref, edges), NumericProfile.build(cur, edges)
        alarms += column_drift("x", r, c, alpha=ALPHA, noise_cache=cache).drifted
    lo, hi = stats.binom.ppf([0.0005, 0.9995], TRIALS, ALPHA)
    assert lo <= alarms <= hi, f"{alarms} alarms in {TRIALS}, expected about {ALPHA * TRIALS:.0f}"


def test_the_chart_draws_point_cells_as_values_and_gaps_as_open_intervals() -> None:
    edges = discrete_edges(np.repeat([1.0, 2.0, 4.0], 50))
    assert edges is not None
    reference, current = [0, 50, 0, 50, 0, 50, 0], [0, 40, 10, 40, 0, 60, 0]
    fig = numeric_distribution_figure(edges.tolist(), reference, current)
    assert fig.layout.xaxis.type == "category"
    assert list(fig.data[1].x) == ["= 1", "(1, 2)", "= 2", "(2, 4)", "= 4"]
    assert list(fig.data[1].y) == pytest.approx([c / 150 for c in current[1:-1]])
