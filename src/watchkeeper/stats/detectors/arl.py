"""Average run lengths of CUSUM charts, and the threshold that gives a wanted one.

The in-control average run length ARL0 of a chart ``S_t = max(0, S_{t-1} + z_t)`` stopped at
``S_t > h`` is its mean time between false alarms. It is computed with the Markov-chain method
of Brook & Evans (1972): ``[0, h]`` is cut into states, ``P`` holds the probabilities of
moving between them in one step, and the run lengths from each state solve
``(I − P) L = 1``.

* Continuous increments (the Gaussian charts): ``N`` states of width ``w = 2h / (2N − 1)``
  around ``0, w, 2w, ...``, transition probabilities from the increment's CDF; the result
  at ``N`` and ``2N`` states is Richardson-extrapolated (the error falls as ``1/N²``).
* Two-point increments (the Bernoulli chart, ``a`` on an error, ``b < 0`` otherwise): a
  lattice of step ``Δ`` with each step rounded at random to the two nearest lattice points so
  that its mean is kept exactly; ``Δ`` is small enough that the variance this adds is under
  0.1 % of the increment's own, and the banded system is solved in ``O(states · band)``.

:func:`threshold_for_arl` inverts ``h ↦ ARL0(h)`` (increasing) with Brent's method on the
log scale.

Examples
--------
>>> round(gaussian_arl(1.0, 5.0))  # the one-sided tabular CUSUM k = 0.5, h = 5
931
>>> h = threshold_for_arl(lambda h: bernoulli_arl(0.1, 1.5, h), 10_000)
>>> round(bernoulli_arl(0.1, 1.5, h))
10000

References
----------
D. Brook, D. A. Evans (1972). An approach to the probability distribution of CUSUM run
length. Biometrika 59(3), 539-549.
D. M. Hawkins, D. H. Olwell (1998). Cumulative Sum Charts and Charting for Quality
Improvement. Springer, ch. 3 and 5.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import linalg, optimize
from scipy.special import ndtr

from watchkeeper.errors import InputError

__all__ = ["bernoulli_arl", "continuous_arl", "gaussian_arl", "spread_arl", "threshold_for_arl"]

FloatArray = NDArray[np.float64]
Cdf = Callable[[FloatArray], FloatArray]

STATES = 100  # continuous charts: states of the coarse grid (the fine one has twice as many)
MAX_LATTICE = 400_000  # Bernoulli lattice: most states allowed
ROUNDING_SHARE = 1e-3  # Bernoulli lattice: variance added by rounding / increment variance
MIN_H = 1e-3  # smallest threshold searched


def _brook_evans(cdf: Cdf, h: float, states: int) -> float:
    w = 2.0 * h / (2 * states - 1)
    mid = np.arange(states) * w
    upper = (np.arange(states) + 0.5) * w  # upper edge of each state's interval
    # P[i, j] = F(upper_j - mid_i) - F(upper_{j-1} - mid_i), state 0 takes everything below
    cum = cdf(upper[None, :] - mid[:, None])
    p = np.diff(cum, axis=1, prepend=0.0)
    lengths = np.linalg.solve(np.eye(states) - p, np.ones(states))
    return float(lengths[0])


def continuous_arl(cdf: Cdf, h: float) -> float:
    """ARL from ``S_0 = 0`` of a CUSUM whose i.i.d. increments have CDF ``cdf``."""
    if not h > 0:
        raise InputError(f"h must be > 0, got {h}")
    coarse = _brook_evans(cdf, h, STATES)
    fine = _brook_evans(cdf, h, 2 * STATES)
    return (4.0 * fine - coarse) / 3.0


def gaussian_arl(shift: float, h: float, mean: float = 0.0) -> float:
    """ARL of the one-sided chart ``z = shift·(u − shift/2)`` with ``u ~ N(mean, 1)``."""
    scale = shift

    def cdf(z: FloatArray) -> FloatArray:
        return np.asarray(ndtr((z + 0.5 * shift * shift) / scale - mean), dtype=np.float64)

    return continuous_arl(cdf, h)


def spread_arl(ratio: float, h: float, std: float = 1.0) -> float:
    """ARL of the chart ``z = (1 − 1/ρ²)·u²/2 − ln ρ`` with ``u ~ N(0, std²)``."""
    c = 0.5 * (1.0 - 1.0 / ratio**2)
    shift = math.log(ratio)

    def cdf(z: FloatArray) -> FloatArray:
        q = np.maximum(z + shift, 0.0) / c  # u² <= q
        return np.asarray(2.0 * ndtr(np.sqrt(q) / std) - 1.0, dtype=np.float64)

    return continuous_arl(cdf, h)


def bernoulli_arl(p0: float, ratio: float, h: float, p: float | None = None) -> float:
    """ARL of the Bernoulli chart designed for ``p0 → min(ratio·p0, (1+p0)/2)``, on a stream
    whose error rate is ``p`` (default ``p0``)."""
    if not 0 < p0 < 1 or not h > 0:
        raise InputError(f"need 0 < p0 < 1 and h > 0, got p0={p0}, h={h}")
    p1 = min(ratio * p0, 0.5 * (1.0 + p0))
    rate = p0 if p is None else p
    up, down = math.log(p1 / p0), math.log((1.0 - p1) / (1.0 - p0))
    var = p0 * (1.0 - p0) * (up - down) ** 2
    step = min(2.0 * math.sqrt(ROUNDING_SHARE * var), h / 50.0)
    n = min(math.ceil(h / step), MAX_LATTICE)
    step = h / n  # states 0..n; above n is an alarm
    moves = []  # (probability, offset)
    for prob, move in ((rate, up / step), (1.0 - rate, down / step)):
        low = math.floor(move)
        frac = move - low
        moves += [(prob * (1.0 - frac), low), (prob * frac, low + 1)]
    lower = max(0, -min(off for _, off in moves))
    upper = max(0, *(off for _, off in moves))
    band = np.zeros((lower + upper + 1, n + 1))
    band[upper] = 1.0  # the identity
    rows = np.arange(n + 1)
    for prob, off in moves:
        if prob == 0.0:
            continue
        cols = rows + off
        keep = cols <= n
        cols = np.maximum(cols[keep], 0)
        # banded storage: ab[upper + i - j, j] = M[i, j]
        np.add.at(band, (upper + rows[keep] - cols, cols), -prob)
    lengths = linalg.solve_banded((lower, upper), band, np.ones(n + 1))
    return float(lengths[0])


def threshold_for_arl(arl: Callable[[float], float], target: float) -> float:
    """The ``h`` with ``arl(h) == target`` for an increasing ``arl``."""
    if not target > 1:
        raise InputError(f"the target run length must be > 1, got {target}")
    low, high = MIN_H, 1.0
    if arl(low) > target:
        raise InputError(
            f"a mean time between false alarms of {target:g} is too short for this chart"
        )
    while arl(high) < target:
        low, high = high, 2.0 * high
        if high > 1e3:
            raise InputError(f"no threshold gives a mean time between false alarms of {target:g}")
    log_target = math.log(target)
    root = optimize.brentq(lambda h: math.log(arl(h)) - log_target, low, high, xtol=1e-5)
    return float(root)


@lru_cache(maxsize=256)
def cached_bernoulli_threshold(p0: float, ratio: float, target: float) -> float:
    """The Bernoulli chart's ``h`` for ARL0 ``target``; 0 (alarm at the first error) when
    errors are so rare that even that chart alarms less often than ``target``."""
    if bernoulli_arl(p0, ratio, MIN_H) >= target:
        return 0.0
    return threshold_for_arl(lambda h: bernoulli_arl(p0, ratio, h), target)


@lru_cache(maxsize=256)
def cached_gaussian_threshold(shift: float, target: float) -> float:
    return threshold_for_arl(lambda h: gaussian_arl(shift, h), target)


@lru_cache(maxsize=256)
def cached_spread_threshold(ratio: float, target: float) -> float:
    return threshold_for_arl(lambda h: spread_arl(ratio, h), target)
