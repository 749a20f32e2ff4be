"""Drift statistics computed from histogram counts.

Every function takes reference counts ``r`` and current counts ``c`` on the same bins and
broadcasts over leading axes, so one call scores thousands of bootstrap replicates at once
(``r`` of shape ``(B,)`` against ``c`` of shape ``(R, B)``). On the same counts each agrees
with its scipy counterpart (see ``tests/stats/test_distances.py``):

=================  ====================================================  ===================
statistic          definition on proportions p (reference), q (current)  scipy oracle
=================  ====================================================  ===================
``ks``             max_k |P_k - Q_k| over the bin boundaries             ks_2samp on data
``wasserstein``    ∫ |P(x) - Q(x)| dx, from cell counts and cell means     wasserstein_distance
``psi``            Σ (q - p) ln(q / p), p and q floored at 1e-4          (formula)
``jensenshannon``  JS distance, base 2, in [0, 1]                        distance.jensenshannon
``hellinger``      sqrt(1 - Σ sqrt(p q)), in [0, 1]                      (formula)
``linf``           max |p - q|                                           (formula)
``chisquare``      Pearson χ² of the 2 × K contingency table             chi2_contingency [1]_
``anderson``       Anderson–Darling A² over n·m/(n+m), cells as ties     anderson_ksamp [2]_
``cell_deviance``  max_j q ln(q / h) − (q − h), h the pooled share       (formula)
=================  ====================================================  ===================

.. [1] with ``correction=False``.
.. [2] the midrank (tied) statistic on the cell index of every value, before scipy's
   standardisation.

On raw data, ``ks`` and ``wasserstein`` from a histogram approximate the exact statistic; the
bounds are :func:`ks_error_bound` and :func:`wasserstein_error_bound`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

PSI_FLOOR = 1e-4


def _proportions(counts: NDArray[np.generic]) -> Array:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    return np.asarray(np.divide(counts, total, out=np.zeros_like(counts), where=total > 0))


def ks(r: NDArray[np.generic], c: NDArray[np.generic]) -> Array:
    """Kolmogorov–Smirnov distance between the two binned distributions."""
    diff = np.cumsum(_proportions(r) - _proportions(c), axis=-1)
    return np.asarray(np.abs(diff).max(axis=-1))


def ks_error_bound(r: NDArray[np.generic], c: NDArray[np.generic]) -> float:
    """How far ``ks`` on bins can be below the exact KS distance of the underlying data.

    Inside a bin both empirical CDFs are monotone, so the gap between them can exceed its value
    at the bin's ends by at most the larger of the two masses in that bin.
    """
    return float(np.maximum(_proportions(r), _proportions(c)).max())


def _cdf_integrals(counts: NDArray[np.generic], means: Array, boundaries: Array) -> Array:
    """∫ F(x) dx over each cell, exact given each cell's mean: b·F(b) − a·F(a⁻) − p·mean."""
    p = _proportions(counts)
    end = np.cumsum(p, axis=-1)
    start = end - p
    return np.asarray(boundaries[1:] * end - boundaries[:-1] * start - p * means)


def wasserstein(
    r: NDArray[np.generic],
    c: NDArray[np.generic],
    boundaries: Array,
    r_means: Array | None = None,
    c_means: Array | None = None,
) -> Array:
    """Wasserstein-1 distance Σ_cells |∫ (F_r − F_c) dx|, from counts and per-cell means.

    ``boundaries`` has one more entry than there are cells: the outer cells run from the
    smallest value seen to the first edge and from the last edge to the largest value seen.
    Given each cell's mean (profiles keep per-cell sums) the integral of each CDF over a cell
    is exact, so the result is exact wherever F_r − F_c keeps its sign inside a cell, and
    never above the true distance. Without means, cell midpoints are used.
    """
    mid = (boundaries[1:] + boundaries[:-1]) / 2
    diff = _cdf_integrals(r, mid if r_means is None else r_means, boundaries) - _cdf_integrals(
        c, mid if c_means is None else c_means, boundaries
    )
    return np.asarray(np.abs(diff).sum(axis=-1))


def wasserstein_error_bound(
    r: NDArray[np.generic], c: NDArray[np.generic], boundaries: Array
) -> float:
    """Bound on the true distance minus ``wasserstein`` (given cell means): Σ width · (p + q)."""
    mass = _proportions(r) + _proportions(c)
    return float((np.diff(boundaries) * mass).sum())


def psi(r: NDArray[np.generic], c: NDArray[np.generic]) -> Array:
    """Population stability index, proportions floored at ``PSI_FLOOR`` (as Evidently does)."""
    p = np.maximum(_proportions(r), PSI_FLOOR)
    q = np.maximum(_proportions(c), PSI_FLOOR)
    return np.asarray(((q - p) * np.log(q / p)).sum(axis=-1))


def _xlogy(x: Array, y: Array) -> Array:
    return np.where(x > 0, x * np.log(np.where(x > 0, y, 1.0)), 0.0)


def jensenshannon(r: NDArray[np.generic], c: NDArray[np.generic]) -> Array:
    """Jensen–Shannon distance (square root of the divergence), base 2, in [0, 1]."""
    p, q = _proportions(r), _proportions(c)
    m = (p + q) / 2
    safe_m = np.where(m > 0, m, 1.0)
    divergence = (_xlogy(p, p / safe_m) + _xlogy(q, q / safe_m)).sum(axis=-1) / (2 * np.log(2))
    return np.asarray(np.sqrt(np.maximum(divergence, 0.0)))


def hellinger(r: NDArray[np.generic], c: NDArray[np.generic]) -> Array:
    """Hellinger distance, in [0, 1]."""
    bc = np.sqrt(_proportions(r) * _proportions(c)).sum(axis=-1)
    return np.asarray(np.sqrt(np.maximum(1.0 - bc, 0.0)))


def linf(r: NDArray[np.generic], c: NDArray[np.generic]) -> Array:
    """L-infinity distance: the largest change in any bin's share."""
    return np.asarray(np.abs(_proportions(r) - _proportions(c)).max(axis=-1))


def chisquare(r: NDArray[np.generic], c: NDArray[np.generic]) -> Array:
    """Pearson χ² statistic of the 2 × K table [r; c], empty columns contributing nothing."""
    rf, cf = np.broadcast_arrays(np.asarray(r, dtype=np.float64), np.asarray(c, dtype=np.float64))
    r, c = rf, cf
    col = rf + cf
    n_r = r.sum(axis=-1, keepdims=True)
    n_c = c.sum(axis=-1, keepdims=True)
    n = n_r + n_c
    e_r = np.divide(col * n_r, n, out=np.zeros_like(col), where=n > 0)
    e_c = np.divide(col * n_c, n, out=np.zeros_like(col), where=n > 0)
    terms = np.divide((r - e_r) ** 2, e_r, out=np.zeros_like(col), where=e_r > 0)
    terms += np.divide((c - e_c) ** 2, e_c, out=np.zeros_like(col), where=e_c > 0)
    return np.asarray(terms.sum(axis=-1))


def anderson(r: NDArray[np.generic], c: NDArray[np.generic]) -> Array:
    """Two-sample Anderson–Darling statistic for tied data, per effective observation.

    Scholz & Stephens' midrank statistic A²_akN (1987, eq. 7), each cell one tied value, divided
    by ``n·m/(n+m)``: ``(N−1)/N · Σ_j h_j (F_j − G_j)² / (H_j (1 − H_j) − h_j / 4)`` over the
    cells holding values, with ``h`` the pooled share of a cell, ``H``, ``F``, ``G`` the pooled,
    reference and current shares below it plus half its own. Quadratic in ``q − p`` like χ²,
    but weighted towards the tails, where a change of scale shows.
    """
    rf, cf = np.asarray(r, dtype=np.float64), np.asarray(c, dtype=np.float64)
    # each side's mid-cell CDF on its own shape: a reference against many replicates is
    # accumulated once
    f, n_r = _mid_cdf(rf)
    g, n_c = _mid_cdf(cf)
    n = n_r + n_c
    with np.errstate(invalid="ignore", divide="ignore"):
        h = (rf + cf) / n
        below = (n_r * f + n_c * g) / n  # the pooled mid-cell CDF
        denominator = below * (1 - below) - h / 4
        diff = f - g
        terms = h * diff * diff / denominator
    terms[~((h > 0) & (denominator > 1e-15))] = 0.0
    both = (n_r > 0) & (n_c > 0)
    scale = np.divide(n - 1, n, out=np.zeros_like(n), where=both)
    return np.asarray((terms.sum(axis=-1, keepdims=True) * scale)[..., 0])


def cell_deviance(r: NDArray[np.generic], c: NDArray[np.generic]) -> Array:
    """The largest per-observation Poisson deviance of one current cell from the pooled share:
    ``max_j q_j ln(q_j / h_j) − (q_j − h_j)``, ``q`` the current's shares and ``h`` the pooled
    ``(r + c) / (n + m)``. Zero on identical shares. It sees mass piled into a few cells (a
    stretched tail filling the outermost cells, values beyond the reference's range) that KS
    and Anderson–Darling, summing over all cells, dilute. ``2·m`` times a cell's term is that
    cell's Poisson likelihood-ratio (G) statistic, which in the sparse outer cells, unlike a
    z-score, keeps close to its χ² law."""
    rf, cf = np.broadcast_arrays(np.asarray(r, dtype=np.float64), np.asarray(c, dtype=np.float64))
    n = rf.sum(axis=-1, keepdims=True)
    m = cf.sum(axis=-1, keepdims=True)
    # in place in three buffers (the calibration scores 2,000 replicates at once)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.divide(cf, m)
        h = np.add(rf, cf)
        np.divide(h, n + m, out=h)
        g = np.divide(q, h)
        np.log(g, out=g)
        np.multiply(g, q, out=g)  # q ln(q / h)
        np.subtract(g, q, out=g)
        np.add(g, h, out=g)
    np.copyto(g, h, where=cf == 0)  # an empty current cell (0 · ln 0 gave NaN): h - q = h
    if not ((m > 0) & (n > 0)).all():
        g = np.where((m > 0) & (n > 0), g, 0.0)
    return np.asarray(np.maximum(g.max(axis=-1), 0.0))


def replicate_statistics(r: NDArray[np.generic], c: NDArray[np.generic]) -> dict[str, Array]:
    """``ks``, ``anderson`` and ``cell_deviance`` of one reference ``r`` (shape ``(B,)``)
    against many current histograms ``c`` (shape ``(R, B)``), by name, in one pass: the
    calibration scores the three on the same 2,000 no-drift replicates, and this shares one
    cumulative sum and the pooled shares between them, in place in three buffers, in about
    half the time of the three functions. Equal to them up to rounding
    (``tests/stats/test_distances.py``)."""
    rf = np.asarray(r, dtype=np.float64)
    counts = np.asarray(c)
    if rf.ndim != 1 or counts.ndim != 2 or counts.shape[1] != rf.size:
        return _separately(r, c)
    n_r = float(rf.sum())
    cum = np.cumsum(counts, axis=-1, dtype=np.float64)  # exact on integer counts
    n_c = cum[:, -1:].copy()
    if n_r <= 0 or not (n_c > 0).all():
        return _separately(r, c)
    cum_r = np.cumsum(rf)
    f_mid = (cum_r - rf / 2) / n_r  # the reference's mid-cell CDF
    n = n_r + n_c
    # in place in three buffers: a fresh array of this size costs page faults on every pass
    work = np.divide(cum, n_c)  # the current's CDF at each cell's upper end
    np.subtract(cum_r / n_r, work, out=work)
    np.abs(work, out=work)
    statistic_ks = work.max(axis=-1)
    half = np.multiply(counts, 0.5, dtype=np.float64)  # half of each current cell
    spare = np.empty_like(work)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.subtract(cum, half, out=work)  # f - g, with g the current's mid-cell CDF
        np.divide(work, n_c, out=work)
        np.subtract(f_mid, work, out=work)
        np.add(cum, cum_r - rf / 2, out=cum)  # the pooled mid-cell CDF
        np.subtract(cum, half, out=cum)
        np.divide(cum, n, out=cum)
        np.multiply(half, 2.0, out=half)  # h, the pooled share of each cell
        np.add(half, rf, out=half)
        filled = half > 0
        np.divide(half, n, out=half)
        np.subtract(1.0, cum, out=spare)  # below (1 - below) - h / 4
        np.multiply(cum, spare, out=cum)
        np.multiply(half, 0.25, out=spare)
        np.subtract(cum, spare, out=cum)
        filled &= cum > 1e-15
        np.multiply(work, work, out=work)
        np.multiply(work, half, out=work)
        np.divide(work, cum, out=work)
    work[~filled] = 0.0
    statistic_ad = work.sum(axis=-1) * ((n - 1) / n)[:, 0]
    # the largest cell deviance, q ln(q / h) - (q - h), with h (the pooled shares) in ``half``
    np.divide(counts, n_c, out=cum)  # q
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(cum, half, out=spare)
        np.log(spare, out=spare)
        np.multiply(spare, cum, out=spare)
        np.subtract(spare, cum, out=spare)
        np.add(spare, half, out=spare)
    np.copyto(spare, half, where=counts == 0)  # an empty current cell (0 · ln 0): h - q = h
    statistic_cells = np.maximum(spare.max(axis=-1), 0.0)
    return {
        "ks": np.asarray(statistic_ks),
        "anderson": np.asarray(statistic_ad),
        "cell_deviance": np.asarray(statistic_cells),
    }


def _separately(r: NDArray[np.generic], c: NDArray[np.generic]) -> dict[str, Array]:
    return {"ks": ks(r, c), "anderson": anderson(r, c), "cell_deviance": cell_deviance(r, c)}


def _mid_cdf(counts: Array) -> tuple[Array, Array]:
    """(share below each cell plus half its own, total), the total kept as a trailing axis."""
    total = counts.sum(axis=-1, keepdims=True)
    mid = np.cumsum(counts, axis=-1) - counts / 2
    return np.divide(mid, total, out=np.zeros_like(mid), where=total > 0), total


def chisquare_dof(r: NDArray[np.generic], c: NDArray[np.generic]) -> int:
    """Degrees of freedom of the contingency table: non-empty columns minus one."""
    filled = np.asarray(r, dtype=np.float64) + np.asarray(c, dtype=np.float64)
    return max(int(np.count_nonzero(filled)) - 1, 0)
