"""Oracle tests: every drift statistic against scipy on the same data or the same counts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from watchkeeper.stats import distances
from watchkeeper.stats.numeric import bin_sums_sorted, histogram_sorted, quantile_edges

SEEDS = range(5)


def _counts(seed: int, k: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k))
    q = rng.dirichlet(np.ones(k))
    return rng.multinomial(5000, p), rng.multinomial(3000, q)


@pytest.mark.parametrize("seed", SEEDS)
def test_jensenshannon_matches_scipy(seed: int) -> None:
    r, c = _counts(seed)
    assert distances.jensenshannon(r, c) == pytest.approx(jensenshannon(r, c, base=2), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_chisquare_matches_chi2_contingency(seed: int) -> None:
    r, c = _counts(seed)
    r[3] = c[3] = 0  # an empty category is dropped, as scipy requires
    table = np.vstack([r, c])[:, (r + c) > 0]
    chi2, _, dof, _ = stats.chi2_contingency(table, correction=False)
    assert distances.chisquare(r, c) == pytest.approx(chi2, rel=1e-12)
    assert distances.chisquare_dof(r, c) == dof


@pytest.mark.parametrize("seed", SEEDS)
def test_hellinger_psi_linf_formulas(seed: int) -> None:
    r, c = _counts(seed)
    p, q = r / r.sum(), c / c.sum()
    hell = np.sqrt(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum())
    assert distances.hellinger(r, c) == pytest.approx(hell, abs=1e-12)
    pf, qf = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    assert distances.psi(r, c) == pytest.approx(((qf - pf) * np.log(qf / pf)).sum(), rel=1e-12)
    assert distances.linf(r, c) == pytest.approx(np.abs(p - q).max(), abs=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
def test_ks_and_wasserstein_within_documented_bounds_of_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.lognormal(0, 0.7, 20_000)
    cur = rng.lognormal(0.05 * seed, 0.8, 8_000)
    edges = quantile_edges(np.sort(ref), 100)
    r, c = histogram_sorted(np.sort(ref), edges), histogram_sorted(np.sort(cur), edges)
    exact_ks = stats.ks_2samp(ref, cur).statistic
    binned = float(distances.ks(r, c))
    assert binned <= exact_ks + 1e-12
    assert exact_ks - binned <= distances.ks_error_bound(r, c)
    bounds = np.concatenate(([min(ref.min(), cur.min())], edges, [max(ref.max(), cur.max())]))
    exact_w = stats.wasserstein_distance(ref, cur)
    means = [
        np.where(h > 0, bin_sums_sorted(np.sort(x), edges) / np.maximum(h, 1), 0.0)
        for x, h in ((ref, r), (cur, c))
    ]
    approx_w = float(distances.wasserstein(r, c, bounds, *means))
    assert approx_w <= exact_w + 1e-9
    assert exact_w - approx_w <= distances.wasserstein_error_bound(r, c, bounds)
    assert exact_w - approx_w <= 0.01 * exact_w  # cell means make it exact but for sign changes


def test_statistics_broadcast_over_replicates() -> None:
    r, c = _counts(0)
    many = np.stack([c, c[::-1], r])
    for fn in (
        distances.ks,
        distances.psi,
        distances.jensenshannon,
        distances.hellinger,
        distances.linf,
        distances.chisquare,
    ):
        out = fn(r, many)
        assert out.shape == (3,)
        assert out[0] == pytest.approx(float(fn(r, c)))
        assert out[2] == pytest.approx(0.0, abs=1e-12)  # a sample against itself shows no drift


def test_identical_distributions_score_zero() -> None:
    r = np.array([10, 20, 30, 0])
    for fn in (
        distances.ks,
        distances.psi,
        distances.jensenshannon,
        distances.hellinger,
        distances.linf,
        distances.chisquare,
    ):
        assert float(fn(r, 2 * r)) == pytest.approx(0.0, abs=1e-12)


def _scipy_anderson_unstandardised(x: np.ndarray, y: np.ndarray) -> float:
    """scipy's two-sample midrank A²_akN: ``anderson_ksamp`` standardises it as
    ``(A² - (k - 1)) / sigma``, with ``sigma`` from the sample sizes only (Scholz & Stephens
    1987, eq. 4, scipy's formula); undo that."""
    k, n = 2, np.array([x.size, y.size], dtype=np.float64)
    big_n = n.sum()
    h_inv = (1.0 / n).sum()
    partial = (1.0 / np.arange(big_n - 1, 1, -1)).cumsum()
    h = partial[-1] + 1
    g = (partial / np.arange(2, big_n)).sum()
    a = (4 * g - 6) * (k - 1) + (10 - 6 * g) * h_inv
    b = (2 * g - 4) * k**2 + 8 * h * k + (2 * g - 14 * h - 4) * h_inv - 8 * h + 4 * g - 6
    c = (6 * h + 2 * g - 2) * k**2 + (4 * h - 4 * g + 6) * k + (2 * h - 6) * h_inv + 4 * h
    d = (2 * h + 6) * k**2 - 4 * h * k
    var = (a * big_n**3 + b * big_n**2 + c * big_n + d) / ((big_n - 1) * (big_n - 2) * (big_n - 3))
    try:  # scipy >= 1.17 names the tied statistic variant="midrank"
        result = stats.anderson_ksamp([x, y], variant="midrank")
    except TypeError:
        result = stats.anderson_ksamp([x, y], midrank=True)
    standardised = result.statistic
    return float(standardised * np.sqrt(var) + (k - 1))


@pytest.mark.filterwarnings("ignore:p-value (capped|floored)")
@pytest.mark.parametrize("seed", SEEDS)
def test_anderson_matches_scipy_anderson_ksamp_on_the_cell_indices(seed: int) -> None:
    r, c = _counts(seed)
    r[3] = c[3] = 0  # a cell empty on both sides holds no tied value
    c[0] = 0
    cells = np.arange(r.size)
    x, y = np.repeat(cells, r), np.repeat(cells, c)
    per_effective = float(distances.anderson(r, c))
    n, m = r.sum(), c.sum()
    assert per_effective * n * m / (n + m) == pytest.approx(
        _scipy_anderson_unstandardised(x, y), rel=1e-10
    )


def test_anderson_broadcasts_and_is_zero_on_identical_shares() -> None:
    r, _ = _counts(0)
    many = np.random.default_rng(0).multinomial(700, r / r.sum(), size=5)
    together = distances.anderson(r, many)
    assert together.shape == (5,)
    assert np.allclose(together, [float(distances.anderson(r, row)) for row in many])
    assert float(distances.anderson(r, 3 * r)) == 0.0
    assert float(distances.anderson(np.array([10, 0]), np.array([4, 0]))) == 0.0


@pytest.mark.filterwarnings("ignore:p-value (capped|floored)")
@pytest.mark.parametrize("seed", SEEDS)
def test_replicate_statistics_score_replicates_as_scipy_does(seed: int) -> None:
    """The calibration's one-pass scoring of many replicates against scipy on the raw cell
    indices of a few of them (KS: ks_2samp; A²: anderson_ksamp), and against the three
    functions on every replicate, empty cells on either side included."""
    rng = np.random.default_rng(seed)
    r, _ = _counts(seed, k=30)
    r[[0, 7, 29]] = 0  # empty reference cells: the open ends and one inside
    p = (r + 0.5) / (r + 0.5).sum()
    many = rng.multinomial(800, p, size=200)
    scores = distances.replicate_statistics(r, many)
    ks_values, ad_values = scores["ks"], scores["anderson"]
    assert np.allclose(ks_values, distances.ks(r, many), rtol=0, atol=1e-14)
    assert np.allclose(ad_values, distances.anderson(r, many), rtol=1e-12, atol=0)
    deviance = distances.cell_deviance(r, many)
    assert np.allclose(scores["cell_deviance"], deviance, rtol=1e-12, atol=1e-15)
    cells = np.arange(r.size)
    x = np.repeat(cells, r)
    n = r.sum()
    for row in range(3):
        y = np.repeat(cells, many[row])
        assert ks_values[row] == pytest.approx(stats.ks_2samp(x, y).statistic, abs=1e-12)
        m = many[row].sum()
        assert ad_values[row] * n * m / (n + m) == pytest.approx(
            _scipy_anderson_unstandardised(x, y), rel=1e-10
        )


@pytest.mark.parametrize("seed", SEEDS)
def test_cell_deviance_is_the_largest_poisson_deviance_of_a_cell(seed: int) -> None:
    """Against scipy.special.kl_div (``q ln(q/h) − q + h``) per cell, ``h`` the pooled share,
    for one pair and broadcast over replicates; zero on identical shares."""
    from scipy.special import kl_div

    r, c = _counts(seed, k=15)
    r[[0, 14]] = 0  # empty reference cells, as a profile's open ends are
    q, h = c / c.sum(), (r + c) / (r.sum() + c.sum())
    assert float(distances.cell_deviance(r, c)) == pytest.approx(float(kl_div(q, h).max()))
    many = np.random.default_rng(seed).multinomial(400, (r + 1) / (r + 1).sum(), size=6)
    together = distances.cell_deviance(r, many)
    assert together.shape == (6,)
    assert np.allclose(together, [float(distances.cell_deviance(r, row)) for row in many])
    assert float(distances.cell_deviance(r, 3 * r)) == 0.0
