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
    """The decision's numbers: the reference's mean error and the no-drift threshold."""

    reference: float
    threshold: float
    natural_variation: float  # the reference chunks' spread beyond sampling noise (0 if none)
    n_eff: int
    tail: str


def pca_threshold(
    holdout: NDArray[np.float64],
    n_current: int,
    alpha: float,
    rng: np.random.Generator,
    chunk_ids: NDArray[np.int64] | None = None,
) -> Threshold:
    """The ``1 − alpha`` quantile of a window's mean error under no drift.

    ``holdout``: the errors of the reference rows the PCA was not fitted on. The window's mean
    and the holdout's mean differ, under no drift, by sampling noise of variance
    ``σ²(1/n + 1/H)``: that of a mean of ``n_eff = nH/(n + H)`` rows. ``REPLICATES`` bootstrap
    means of ``min(n_eff, BOOTSTRAP_ROWS)`` holdout errors, their deviations from the holdout
    mean scaled by ``sqrt(rows / n_eff)`` (a mean's deviation shrinks as ``1/sqrt(n)``), sample
    that noise with the errors' own skew. With ``chunk_ids`` (each holdout row's consecutive
    reference chunk, time-ordered references), each chunk's squared deviation from the holdout
    mean beyond its sampling variance ``σ²(1/s_j − 1/H)`` is its excess ``e_j``; each replicate
    gets ``± sqrt(e_J)`` of a chunk ``J`` drawn at random, as the univariate decision adds the
    chunk excess. Threshold: the empirical quantile when ``alpha · REPLICATES ≥ 20``, else a
    normal tail with the replicates' mean and standard deviation.
    """
    size = len(holdout)
    mean = float(holdout.mean())
    var = float(holdout.var())
    n_eff = max(round(n_current * size / (n_current + size)), 1)
    rows = min(n_eff, BOOTSTRAP_ROWS)
    draws = rng.choice(holdout, size=(REPLICATES, rows), replace=True).mean(axis=1)
    null = (draws - mean) * np.sqrt(rows / n_eff)
    natural = 0.0
    if chunk_ids is not None:
        counts = np.bincount(chunk_ids)
        sums = np.bincount(chunk_ids, weights=holdout)
        used = counts > 0
        if used.sum() >= 2:
            dev2 = (sums[used] / counts[used] - mean) ** 2
            excess = np.maximum(dev2 - var * (1 / counts[used] - 1 / size), 0.0)
            natural = float(np.sqrt(excess.mean()))
            picks = rng.integers(0, len(excess), REPLICATES)
            signs = rng.choice(np.array([-1.0, 1.0]), REPLICATES)
            null = null + signs * np.sqrt(excess[picks])
    if alpha * REPLICATES >= 20:
        q, tail = float(np.quantile(null, 1 - alpha, method="higher")), "empirical"
    else:
        q, tail = float(null.mean() + stats.norm.isf(alpha) * null.std()), "normal"
    return Threshold(mean, mean + q, natural, n_eff, tail)
