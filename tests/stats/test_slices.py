"""The failing-slice statistics against scipy and hand computations: Fisher's exact test, Welch's
t-test from sums, Holm's adjustment, and counts that merge by addition."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from watchkeeper.errors import ProfileMismatchError
from watchkeeper.stats.slices import SliceCounts, fisher_greater, holm, welch_greater


def test_fisher_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    total, total_errors = 500, 60
    n = rng.integers(1, 400, 50).astype(float)
    errors = np.array(
        [
            rng.integers(max(0, k - (total - total_errors)), min(k, total_errors) + 1)
            for k in n.astype(int)
        ],
        dtype=float,
    )
    ours = fisher_greater(errors, n, total_errors, total)
    for e, k, p in zip(errors, n, ours, strict=True):
        table = [[e, k - e], [total_errors - e, total - k - (total_errors - e)]]
        expected = stats.fisher_exact(table, alternative="greater").pvalue
        assert p == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_welch_from_sums_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    for _ in range(30):
        a = np.abs(rng.normal(0, rng.uniform(0.5, 3), rng.integers(5, 300)))
        b = np.abs(rng.normal(0, 1, rng.integers(5, 3000)))
        got = welch_greater(*(np.array([f(v)]) for v in (a, b) for f in (len, np.sum, _sq)))
        # the sums arrive in the order slice (n, s1, s2), rest (m, t1, t2)
        expected = stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue
        assert got[0] == pytest.approx(expected, rel=1e-6)


def _sq(v: np.ndarray) -> float:
    return float(np.sum(v * v))


def test_welch_degenerate_sides() -> None:
    one = np.array([10.0])
    # constant losses on both sides: certainly worse, or not at all
    assert welch_greater(one, one * 2, one * 4, one, one, one).tolist() == [0.0]
    assert welch_greater(one, one, one, one, one * 2, one * 4).tolist() == [1.0]


def test_holm_matches_a_hand_computation() -> None:
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.uniform(0, 1, 40), rng.uniform(0, 1e-4, 5), [0.5, 0.5]])
    m = p.size
    order = np.argsort(p, kind="stable")
    expected = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        expected[i] = running
    assert np.allclose(holm(p), expected, rtol=0, atol=1e-15)
    # holm never rejects more than Bonferroni-at-the-smallest and at least as much
    assert (holm(p) >= p).all() and (holm(p) <= np.minimum(1, m * p)).all()
    assert holm([]).size == 0


def test_counts_merge_by_addition() -> None:
    rng = np.random.default_rng(4)
    n = 1000
    codes = {"a": (rng.integers(0, 4, n), 4), "b": (rng.integers(0, 3, n), 3)}
    loss = rng.exponential(1.0, n)
    whole = SliceCounts.count(codes, loss)
    half = {k: (c[:400], size) for k, (c, size) in codes.items()}
    rest = {k: (c[400:], size) for k, (c, size) in codes.items()}
    merged = SliceCounts.count(half, loss[:400]).merge(SliceCounts.count(rest, loss[400:]))
    assert whole.cells.keys() == merged.cells.keys() == {("a",), ("b",), ("a", "b")}
    for key, cells in whole.cells.items():
        assert np.allclose(cells, merged.cells[key])
    assert np.allclose(whole.total, merged.total)
    # the pair's cell a * 3 + b counts the rows with both
    pair = whole.cells[("a", "b")]
    both = (codes["a"][0] == 2) & (codes["b"][0] == 1)
    assert pair[0, 7] == both.sum() and pair[1, 7] == pytest.approx(loss[both].sum())
    with pytest.raises(ProfileMismatchError):
        whole.merge(SliceCounts.count({"a": codes["a"]}, loss))
