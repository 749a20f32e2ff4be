"""The row-order test: its statistics against scipy, its size on i.i.d. rows, its power."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from tests import dependent_data
from watchkeeper.stats.dependence import (
    DEPENDENCE_ALPHA,
    RowDependence,
    block_table,
    chisquare_homogeneity,
    kruskal_binned,
    row_dependence,
    serial_correlation,
)


def _cells(x: np.ndarray, bins: int = 100) -> np.ndarray:
    edges = np.quantile(x, np.linspace(0, 1, bins + 1))
    return np.clip(np.searchsorted(edges, x, side="right"), 1, bins)


def test_kruskal_matches_scipy_on_the_cell_indices() -> None:
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 30, 3001)
    table = block_table(cells, 30, 12)
    h, df = kruskal_binned(table)
    block = (np.arange(cells.size) * 12) // cells.size
    want = sps.kruskal(*(cells[block == b] for b in range(12)))
    assert h == pytest.approx(want.statistic, rel=1e-10) and df == 11


def test_chisquare_matches_chi2_contingency_when_nothing_is_pooled() -> None:
    rng = np.random.default_rng(1)
    table = rng.integers(20, 60, size=(6, 5))
    chi2, dof = chisquare_homogeneity(table)
    want = sps.chi2_contingency(table, correction=False)
    assert chi2 == pytest.approx(want.statistic, rel=1e-12) and dof == want.dof


def test_serial_correlation_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    cells = rng.integers(0, 7, 500)
    r1, _ = serial_correlation(cells, 7)
    ranks = sps.rankdata(cells)  # mid-ranks, as the cells' ties give
    a = ranks - ranks.mean()
    assert r1 == pytest.approx(float(a[1:] @ a[:-1] / (a @ a)), rel=1e-12)


def test_p_values_are_uniform_on_iid_rows() -> None:
    """Each component p-value is uniform on i.i.d. rows (Kolmogorov–Smirnov against U(0, 1)),
    and the combined test fires within the binomial band of its level."""
    rng = np.random.default_rng(3)
    results = [row_dependence(_cells(rng.normal(size=4000)), 102, ordered=True) for _ in range(300)]
    for part in ("kruskal_p", "chisquare_p"):
        assert sps.kstest([getattr(r, part) for r in results], "uniform").pvalue > 0.001
    combined = np.array([r.p_value for r in results])
    assert (combined < 0.05).sum() <= sps.binom.ppf(0.999, 300, 0.05)
    categorical = [
        row_dependence(rng.integers(0, 6, 3000), 7, ordered=False).p_value for _ in range(200)
    ]
    assert sps.kstest(categorical, "uniform").pvalue > 0.001


@pytest.mark.parametrize(
    "make",
    [
        lambda s: dependent_data.ar1(s, phi=0.3),
        dependent_data.clustered,
        dependent_data.seasonal,
    ],
    ids=["ar1", "clustered", "seasonal"],
)
def test_dependent_rows_are_found(make) -> None:  # type: ignore[no-untyped-def]
    for seed in range(3):
        ref, _ = make(seed)
        for name in ref.column_names:
            values = ref.column(name).to_numpy(zero_copy_only=False)
            if values.dtype.kind == "f":
                result = row_dependence(_cells(values), 102, ordered=True)
            else:
                cells = np.unique(values, return_inverse=True)[1]
                result = row_dependence(cells, int(cells.max()) + 1, ordered=False)
            assert result.dependent, (seed, name, result)


def test_too_few_rows_are_not_tested_and_results_round_trip() -> None:
    small = row_dependence(np.arange(100) % 5, 5, ordered=True)
    assert small.p_value is None and not small.dependent and small.test == "none"
    sorted_rows = row_dependence(np.sort(np.arange(5000) % 10), 10, ordered=True)
    assert sorted_rows.dependent and sorted_rows.alpha == DEPENDENCE_ALPHA
    assert RowDependence.from_dict(sorted_rows.to_dict()) == sorted_rows
    with pytest.raises(ValueError, match="alpha"):
        row_dependence(np.arange(10), 10, ordered=True, alpha=0)
