"""PCA reconstruction error: how far a window's rows lie from the reference's main directions.

The reference's rows are split at random in two halves. On the first (at most ``FIT_ROWS``
rows) the :class:`~watchkeeper.multivariate.encoding.Encoder` and a PCA are fitted, keeping the
fewest components that explain more than ``VARIANCE`` (65 %, NannyML's default) of the
variance. A row's error is the Euclidean distance between its standardized vector and that
vector projected on the components and back. The second half (at most ``HOLDOUT_ROWS`` rows),
which the PCA never saw, gives the errors of new rows under no drift: a window's mean error is
compared with theirs (:func:`pca_threshold`). A change in how features move together (a
correlation that flips) moves rows off the reference's components, and the error grows even
when every marginal distribution stays the same.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(4000, 1))
>>> ref = np.hstack([x, x + rng.normal(0, 0.3, (4000, 1)), rng.normal(size=(4000, 1))])
>>> pca = Pca.fit(ref[:2000])
>>> pca.n_components, bool(pca.errors(ref[2000:]).mean() < 0.9)
(1, True)
>>> flipped = ref[2000:] * [1, -1, 1]  # the correlation flips, the marginals do not
>>> bool(pca.errors(flipped).mean() > 1.5)
True
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

Matrix = NDArray[np.float64]
VARIANCE = 0.65  # the share of the variance the kept components explain (NannyML's default)
FIT_ROWS = 20_000  # reference rows the PCA is fitted on, at most
HOLDOUT_ROWS = 50_000  # reference rows that calibrate the threshold, at most
REPLICATES = 2000  # no-drift replicates of the window's mean error
BOOTSTRAP_ROWS = 1000  # rows per replicate; larger effective sizes are scaled (see below)


@dataclass
class Pca:
    """Principal components of a standardized matrix (centred again on its own mean)."""

    center: NDArray[np.float64]
    components: Matrix  # n_components × features
    explained: float  # the share of the variance they explain

    @classmethod
    def fit(cls, matrix: Matrix, variance: float = VARIANCE) -> Pca:
        """The fewest components whose explained share exceeds ``variance`` (scikit-learn's
        rule for ``PCA(n_components=variance)``)."""
        center = matrix.mean(axis=0)
        centred = matrix - center
        # the eigenvectors of the covariance: the right singular vectors of the centred matrix
        # (a features × features problem, instead of an SVD of every row)
        power, vectors = np.linalg.eigh(centred.T @ centred)
        power, vectors = np.maximum(power[::-1], 0.0), vectors[:, ::-1]
        total = power.sum()
        if total <= 0:
            return cls(center, vectors.T[:0], 0.0)
        ratio = np.cumsum(power) / total
        k = min(int(np.searchsorted(ratio, variance, side="right")) + 1, len(power))
        return cls(center, np.ascontiguousarray(vectors.T[:k]), float(ratio[k - 1]))

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def errors(self, matrix: Matrix) -> NDArray[np.float64]:
        """Per row: the Euclidean distance between the row and its reconstruction."""
        centred = matrix - self.center
        # the components are orthonormal: |x − x̂|² = |x|² − |projection|²
        scores = centred @ self.components.T
        squared = np.einsum("ij,ij->i", centred, centred) - np.einsum("ij,ij->i", scores, scores)
        out: NDArray[np.float64] = np.sqrt(np.maximum(squared, 0.0))
        return out


@dataclass
class Threshold:
    """The decision's numbers: the reference's mean error and the no-drift band around it.

    The decision is two-sided: a window's mean error above ``upper`` (the error rose: rows
    left the reference's main directions) or below ``lower`` (the error fell: rows crowd
    closer to them than the reference's do) is a change, each side at ``alpha / 2``."""

    reference: float
    lower: float
    upper: float
    natural_variation: float  # the reference chunks' spread beyond sampling noise (0 if none)
    n_eff: int
    tail: str

    @property
    def threshold(self) -> float:
        """The upper bound (the one-sided threshold of releases before the two-sided band)."""
        return self.upper

    def side(self, value: float) -> str | None:
        """``"error rose"``, ``"error fell"``, or None inside the band."""
        if value > self.upper:
            return "error rose"
        if value < self.lower:
            return "error fell"
        return None


BLOCK = 100  # bootstrap columns drawn per random stream (BOOTSTRAP_ROWS / BLOCK streams)


class BootstrapNull:
    """The no-drift replicates of one fit's held-out errors, drawn once and shared by every
    window size (see :func:`pca_threshold`).

    ``REPLICATES`` rows of ``BOOTSTRAP_ROWS`` held-out errors drawn with replacement: the mean
    of a row's first ``m`` draws is a bootstrap mean of ``m`` errors, so one matrix serves
    every window size, and a window costs a sum over it instead of 2,000 × ``m`` new draws.
    The columns are drawn in blocks of ``BLOCK``, each block from its own stream of
    ``seed``, only as far as the largest size asked for: the values do not depend on the
    order in which window sizes come (``compare()`` and a fitted ``Reference`` agree).
    Each replicate's reference chunk and sign (the natural-variation term) are drawn once too.
    """

    def __init__(self, holdout: NDArray[np.float64], seed: int | None) -> None:
        self.holdout = holdout
        self.mean = float(holdout.mean())
        self.var = float(holdout.var())
        # a seed of None: random, but fixed for this object's life
        self._seed = int(np.random.SeedSequence().entropy) if seed is None else seed  # type: ignore[arg-type]
        self._values = holdout.astype(np.float32)  # what the draws take (half the bytes)
        self._draws = np.empty((REPLICATES, BOOTSTRAP_ROWS), np.float32)  # filled by block
        self._drawn = 0  # columns filled
        self._lock = threading.Lock()  # a service's evaluator threads share a version's state
        natural = np.random.default_rng([self._seed, 4, 0])
        self._pick = natural.random(REPLICATES)  # a chunk: floor(pick × chunks)
        self._sign = natural.choice(np.array([-1.0, 1.0]), REPLICATES)

    def means(self, rows: int) -> NDArray[np.float64]:
        """``REPLICATES`` bootstrap means of ``rows`` (≤ ``BOOTSTRAP_ROWS``) held-out errors."""
        with self._lock:
            for b in range(self._drawn // BLOCK, -(-rows // BLOCK)):
                rng = np.random.default_rng([self._seed, 4, b + 1])
                picks = rng.integers(0, len(self._values), (REPLICATES, BLOCK), dtype=np.int32)
                block = self._draws[:, b * BLOCK : (b + 1) * BLOCK]
                np.take(self._values, picks, out=block, mode="clip")  # in range: no buffer
                self._drawn = (b + 1) * BLOCK
        out: NDArray[np.float64] = self._draws[:, :rows].sum(axis=1, dtype=np.float64) / rows
        return out

    def threshold(
        self, n_current: int, alpha: float, chunk_ids: NDArray[np.int64] | None = None
    ) -> Threshold:
        """The no-drift band of a window of ``n_current`` rows (:func:`pca_threshold`)."""
        size = len(self.holdout)
        mean, var = self.mean, self.var
        n_eff = max(round(n_current * size / (n_current + size)), 1)
        rows = min(n_eff, BOOTSTRAP_ROWS)
        null = (self.means(rows) - mean) * np.sqrt(rows / n_eff)
        natural = 0.0
        if chunk_ids is not None:
            counts = np.bincount(chunk_ids)
            sums = np.bincount(chunk_ids, weights=self.holdout)
            used = counts > 0
            if used.sum() >= 2:
                dev2 = (sums[used] / counts[used] - mean) ** 2
                excess = np.maximum(dev2 - var * (1 / counts[used] - 1 / size), 0.0)
                natural = float(np.sqrt(excess.mean()))
                picks = np.minimum((self._pick * len(excess)).astype(np.int64), len(excess) - 1)
                null = null + self._sign * np.sqrt(excess[picks])
        half = alpha / 2  # each side
        if half * REPLICATES >= 20:
            lo = float(np.quantile(null, half, method="lower"))
            hi = float(np.quantile(null, 1 - half, method="higher"))
            tail = "empirical"
        else:
            z = float(stats.norm.isf(half))
            centre, spread = float(null.mean()), float(null.std())
            lo, hi, tail = centre - z * spread, centre + z * spread, "normal"
        return Threshold(mean, mean + lo, mean + hi, natural, n_eff, tail)


def pca_threshold(
    holdout: NDArray[np.float64],
    n_current: int,
    alpha: float,
    seed: int | None,
    chunk_ids: NDArray[np.int64] | None = None,
) -> Threshold:
    """The ``alpha / 2`` and ``1 − alpha / 2`` quantiles of a window's mean error under no
    drift: the two-sided band of a two-sided decision at false-alarm rate ``alpha``.

    ``holdout``: the errors of the reference rows the PCA was not fitted on. The window's mean
    and the holdout's mean differ, under no drift, by sampling noise of variance
    ``σ²(1/n + 1/H)``: that of a mean of ``n_eff = nH/(n + H)`` rows. ``REPLICATES`` bootstrap
    means of ``min(n_eff, BOOTSTRAP_ROWS)`` holdout errors, their deviations from the holdout
    mean scaled by ``sqrt(rows / n_eff)`` (a mean's deviation shrinks as ``1/sqrt(n)``), sample
    that noise with the errors' own skew (both tails from the same replicates). With
    ``chunk_ids`` (each holdout row's consecutive reference chunk, time-ordered references),
    each chunk's squared deviation from the holdout mean beyond its sampling variance
    ``σ²(1/s_j − 1/H)`` is its excess ``e_j``; each replicate gets ``± sqrt(e_J)`` of a chunk
    ``J`` drawn at random, as the univariate decision adds the chunk excess. Bounds: the
    empirical quantiles when ``alpha / 2 · REPLICATES ≥ 20``, else normal tails with the
    replicates' mean and standard deviation. One call draws anew; a fit keeps a
    :class:`BootstrapNull` and asks it for every window size.
    """
    return BootstrapNull(holdout, seed).threshold(n_current, alpha, chunk_ids)
