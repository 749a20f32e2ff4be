"""Drift thresholds calibrated to a false-alarm rate.

A fixed distance threshold ignores sample size, and a p-value flags everything on large data.
Instead, the threshold of a column is the ``1 - alpha`` quantile of the statistic's own
distribution when there is **no drift**, at the sizes actually compared:

1. *Sampling noise.* Under no drift, reference and current histograms are both multinomial
   draws from the reference's bin proportions p. Two samples of sizes n and m compare like
   the fixed p against one sample of the effective size ``n·m / (n + m)`` (exact to first
   order for every statistic here; the same device gives the asymptotic two-sample KS law).
   ``replicates`` such histograms are drawn and scored in one vectorised call.
2. *Natural variation.* Real data are not i.i.d. in time: weekdays, campaigns, batches. When
   the reference has a time order, it is cut into consecutive chunks of about the current
   window's size; each chunk is scored against the rest of the reference. What a chunk's
   statistic shows beyond the sampling noise expected at its size is that chunk's *excess*.
   The null sample becomes ``noise_r + excess_{k(r)}`` with chunk k(r) drawn at random, so
   a current window that varies as much as the reference's own chunks do does not alarm.

Statistics are combined on the scale where they add: squared for distances (KS, Wasserstein,
Jensen–Shannon and Hellinger distances, L-infinity), as they are for χ²-type divergences
(PSI, χ²). When ``alpha * replicates`` is below 20 the empirical tail is too thin, and the
quantile comes from a gamma distribution matched to the null sample's mean and variance
(a Satterthwaite–Welch approximation, which is exact in shape for χ²-type statistics).

Examples
--------
>>> import numpy as np
>>> from watchkeeper.stats import distances
>>> ref = np.full(10, 1_000)            # 10 equally filled reference bins, n = 10,000
>>> t = null_threshold(distances.ks, ref, 2_000, alpha=0.01, power=2, seed=0)
>>> round(t.threshold, 3)
0.036
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

from watchkeeper.stats import distances

Statistic = Callable[[NDArray[np.generic], NDArray[np.generic]], NDArray[np.float64]]

DEFAULT_REPLICATES = 2000
MIN_TAIL = 20


@dataclass(frozen=True)
class NullThreshold:
    """The calibrated threshold and how it was obtained."""

    threshold: float
    null_median: float
    replicates: int
    chunks: int
    natural_variation: float  # mean excess of the reference's chunks over sampling noise
    tail: str  # "empirical" or "gamma"


def effective_size(n_reference: int, n_current: int) -> int:
    return max(round(n_reference * n_current / (n_reference + n_current)), 1)


def _noise(
    stat: Statistic,
    ref_counts: NDArray[np.int64],
    p: NDArray[np.float64],
    sizes: tuple[int, int],
    replicates: int,
    rng: np.random.Generator,
    scale_free: bool,
) -> NDArray[np.float64]:
    if scale_free:
        draws = rng.multinomial(effective_size(*sizes), p, size=replicates)
        return np.asarray(stat(ref_counts, draws), dtype=np.float64)
    refs = rng.multinomial(sizes[0], p, size=replicates)
    return np.asarray(stat(refs, rng.multinomial(sizes[1], p, size=replicates)), dtype=np.float64)


def _quantile(sample: NDArray[np.float64], alpha: float) -> tuple[float, str]:
    if alpha * sample.size >= MIN_TAIL:
        return float(np.quantile(sample, 1 - alpha, method="higher")), "empirical"
    mean, var = float(sample.mean()), float(sample.var())
    if var <= 0 or mean <= 0:
        return float(sample.max()), "empirical"
    shape, scale = mean * mean / var, var / mean
    return float(sps.gamma.ppf(1 - alpha, shape, scale=scale)), "gamma"


def _proportions(
    ref_counts: NDArray[np.generic], open_cells: tuple[int, ...]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The reference's counts as integers and the cell proportions the null draws from: an
    empty open cell gets one pseudo-count (see :func:`null_threshold`)."""
    ref = np.asarray(ref_counts, dtype=np.int64)
    pseudo = np.zeros(ref.size)
    for cell in open_cells:
        pseudo[cell] = 1.0 if ref[cell] == 0 else 0.0
    return ref, (ref + pseudo) / (int(ref.sum()) + pseudo.sum())


def _rng(seed: int | None, *parts: int) -> np.random.Generator:
    """One stream per simulation, so a result never depends on what ran before it."""
    return np.random.default_rng([0 if seed is None else seed, *parts])


def null_threshold(
    stat: Statistic,
    ref_counts: NDArray[np.generic],
    n_current: int,
    *,
    alpha: float,
    power: int,
    chunk_counts: NDArray[np.generic] | None = None,
    replicates: int = DEFAULT_REPLICATES,
    seed: int | None = 0,
    noise_cache: dict[tuple[object, ...], NDArray[np.float64]] | None = None,
    scale_free: bool = True,
    open_cells: tuple[int, ...] = (),
    extrapolate: bool = False,
) -> NullThreshold:
    """Threshold above which ``stat(ref_counts, current)`` signals drift at false-alarm ``alpha``.

    ``chunk_counts`` (K × B), when given, are the reference's consecutive chunks in time order;
    their sum must equal ``ref_counts``. ``noise_cache`` lets columns with the same reference
    proportions (every continuous column binned at equal mass) share one simulation.
    ``scale_free=False`` is for statistics that grow with the sample sizes (χ²): both
    histograms are then drawn at their actual sizes. ``open_cells`` are cells the reference
    sample left empty but the population does not: values beyond the reference's minimum and
    maximum, or categories it never showed. An empty one gets one pseudo-count, since a new
    value falls beyond the extremes of n exchangeable values with probability 1 / (n + 1).
    ``extrapolate=True`` (chunks of rows found dependent) lets the tail reach past the
    chunks' largest excess (``"scaled"`` and ``"shift"`` tails, see ``docs/statistics.md``).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha (the false-alarm rate) must be in (0, 1), got {alpha}")
    ref, p = _proportions(ref_counts, open_cells)
    n_ref = int(ref.sum())

    def rng_for(*parts: int) -> np.random.Generator:
        return _rng(seed, *parts)

    def noise(sizes: tuple[int, int]) -> NDArray[np.float64]:
        size_key = sizes if not scale_free else (effective_size(*sizes),)
        key = (stat, p.tobytes(), ref.tobytes(), size_key, power, replicates, seed)
        if noise_cache is not None and key in noise_cache:
            return noise_cache[key]
        rng = rng_for(*size_key)
        sample = _noise(stat, ref, p, sizes, replicates, rng, scale_free) ** power
        if noise_cache is not None:
            noise_cache[key] = sample
        return sample

    null = noise((n_ref, n_current))
    k, variation = 0, 0.0
    if chunk_counts is not None and len(chunk_counts) >= 2:
        chunks = np.asarray(chunk_counts, dtype=np.int64)
        sizes = chunks.sum(axis=1)
        chunks, sizes = chunks[sizes > 0], sizes[sizes > 0]
        k = len(chunks)
        if k >= 2:
            observed = stat(ref - chunks, chunks) ** power
            typical = int(np.median(sizes))
            chunk_noise = noise((n_ref - typical, typical))
            expected = float(chunk_noise.mean())
            excess = np.maximum(observed - expected, 0.0)
            variation = float(excess.mean()) ** (1 / power)
            tails = (
                _extrapolated(null, chunk_noise, observed, alpha, rng_for(k, typical, 1))
                if extrapolate
                else {}
            )
            null = null + excess[rng_for(k, typical).integers(0, k, size=null.size)]
            value, tail = _quantile(null, alpha)
            for name, extrapolated in tails.items():
                if extrapolated > value:
                    value, tail = extrapolated, name
            return _result(value, null, power, replicates, k, variation, tail)
    value, tail = _quantile(null, alpha)
    return _result(value, null, power, replicates, k, variation, tail)


def _extrapolated(
    null: NDArray[np.float64],
    chunk_noise: NDArray[np.float64],
    observed: NDArray[np.float64],
    alpha: float,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Tails past the chunks' largest excess: a new window's excess exceeds every one of K
    chunks' with probability 1 / (K + 1), so the resampled mixture's quantile alone is too low
    on dependent rows. The threshold is the largest of the mixture's quantile and these two
    (``docs/statistics.md``)."""
    k = observed.size
    mean_excess = max(float(observed.mean()) - float(chunk_noise.mean()), 0.0)
    return {
        "scaled": _scaled_tail(null, chunk_noise, float(observed.mean()), k, alpha, rng),
        "shift": _quantile(null + mean_excess * _f_draws(k, null.size, rng), alpha)[0],
    }


def _f_draws(k: int, size: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """``X / mean(X_1 … X_k)`` with every ``X`` χ²₁: F(1, k) draws. A new window's
    one-directional excess over the mean of ``k`` chunks' excesses, so the spread of that mean
    (estimated from ``k`` chunks) widens the tail as it should."""
    return rng.chisquare(1, size) / (rng.chisquare(k, size) / k)


def _scaled_tail(
    null: NDArray[np.float64],
    chunk_noise: NDArray[np.float64],
    observed_mean: float,
    k: int,
    alpha: float,
    rng: np.random.Generator,
) -> float:
    """The ``1 - alpha`` quantile of the no-drift statistic when dependence multiplies the noise
    by a design effect ``D`` (an effective sample size ``n / D``), with ``D`` estimated by the
    mean of the ``k`` chunks' statistics over the noise's, ``D̂ = mean(o) / E[N_s]``. The ratio
    of a new window's statistic to ``D̂`` is pivotal, ``N_new · E[N_s] / mean(N_s,1..k)``, so
    its quantile is simulated from the noise alone: the threshold is ``D̂`` times it, which
    allows for the error of ``D̂`` estimated from ``k`` chunks."""
    expected = float(chunk_noise.mean())
    if expected <= 0:
        return 0.0
    design = max(observed_mean / expected, 1.0)
    means = chunk_noise[rng.integers(0, chunk_noise.size, size=(null.size, k))].mean(axis=1)
    pivot = null * expected / np.maximum(means, np.finfo(float).tiny)
    return design * _quantile(pivot, alpha)[0]


def _result(
    value: float,
    null: NDArray[np.float64],
    power: int,
    replicates: int,
    k: int,
    variation: float,
    tail: str,
) -> NullThreshold:
    return NullThreshold(
        threshold=value ** (1 / power),
        null_median=float(np.median(null)) ** (1 / power),
        replicates=replicates,
        chunks=k,
        natural_variation=variation,
        tail=tail,
    )


@dataclass(frozen=True)
class NullSample:
    """Simulated no-drift values of a statistic, on the powered scale, and their chunks."""

    values: NDArray[np.float64]
    chunks: int
    natural_variation: float


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha (the false-alarm rate) must be in (0, 1), got {alpha}")


def threshold_of(null: NullSample, value: float, power: int, tail: str) -> NullThreshold:
    """The :class:`NullThreshold` of a quantile ``value`` of ``null`` (powered scale)."""
    return NullThreshold(
        threshold=value ** (1 / power),
        null_median=float(np.median(null.values)) ** (1 / power),
        replicates=null.values.size,
        chunks=null.chunks,
        natural_variation=null.natural_variation,
        tail=tail,
    )


def either_quantiles(
    samples: list[NDArray[np.float64]], alpha: float
) -> tuple[list[float], float, str]:
    """Thresholds for "drift when ANY statistic exceeds its own", at false-alarm ``alpha``.

    ``samples`` are null samples of several statistics on the SAME replicates (the same
    draws: :func:`null_samples` scores them together). Each statistic gets its
    ``1 - a`` quantile, with one common level ``a``: the largest ``j / R`` (``j`` from
    ``alpha·R`` down) at which at most ``alpha`` of the replicates exceed any threshold, so
    between ``alpha / S`` (Bonferroni) and ``alpha``: the calibrated min-p combination. When
    ``alpha·R`` is below ``MIN_TAIL`` the tails are too thin for that; each statistic then gets
    its gamma-tail quantile at ``alpha / S``. Returns (thresholds, a, tail).
    """
    size, count = samples[0].size, len(samples)
    if alpha * size < MIN_TAIL:
        quantiles = [_quantile(s, alpha / count) for s in samples]
        return [q for q, _ in quantiles], alpha / count, quantiles[0][1]
    ordered = [np.sort(s) for s in samples]
    # a replicate exceeds the value at sorted index t exactly when more than t values are below
    # it; the most of that over the statistics says at which thresholds it alarms
    ranks = [np.searchsorted(o, s, side="left") for o, s in zip(ordered, samples, strict=True)]
    below = np.max(ranks, axis=0)
    below.sort()
    levels = np.arange(int(alpha * size), int(np.ceil(alpha * size / count)) - 1, -1) / size
    # index of np.quantile(..., 1 - level, method="higher") in a sorted sample
    index = np.ceil((size - 1) * (1 - levels) - 1e-9).astype(np.int64)
    exceeding = size - np.searchsorted(below, index, side="right")
    fits = np.flatnonzero(exceeding <= alpha * size)
    pick = int(fits[0]) if fits.size else len(levels) - 1
    return [float(o[index[pick]]) for o in ordered], float(levels[pick]), "empirical"


def null_samples(
    statistics: Sequence[tuple[Statistic, int]],
    ref_counts: NDArray[np.generic],
    n_current: int,
    *,
    chunk_counts: NDArray[np.generic] | None = None,
    replicates: int = DEFAULT_REPLICATES,
    seed: int | None = 0,
    noise_cache: dict[tuple[object, ...], NDArray[np.float64]] | None = None,
    scale_free: bool = True,
    open_cells: tuple[int, ...] = (),
) -> list[NullSample]:
    """No-drift samples of several (statistic, power) pairs on the same replicates: one set of
    draws scores every statistic, and each replicate gets the same chunk excess draw."""
    ref, p = _proportions(ref_counts, open_cells)
    n_ref = int(ref.sum())

    def rng_for(*parts: int) -> np.random.Generator:
        return _rng(seed, *parts)

    def noise(sizes: tuple[int, int]) -> list[NDArray[np.float64]]:
        size_key = sizes if not scale_free else (effective_size(*sizes),)
        keys = [
            (stat, p.tobytes(), ref.tobytes(), size_key, power, replicates, seed)
            for stat, power in statistics
        ]
        if noise_cache is not None and all(key in noise_cache for key in keys):
            return [noise_cache[key] for key in keys]
        samples = _noise_many(statistics, ref, p, sizes, replicates, rng_for(*size_key), scale_free)
        if noise_cache is not None:
            for key, sample in zip(keys, samples, strict=True):
                noise_cache[key] = sample
        return samples

    nulls = noise((n_ref, n_current))
    k, variations = 0, [0.0] * len(statistics)
    if chunk_counts is not None and len(chunk_counts) >= 2:
        chunks = np.asarray(chunk_counts, dtype=np.int64)
        sizes = chunks.sum(axis=1)
        chunks, sizes = chunks[sizes > 0], sizes[sizes > 0]
        k = len(chunks)
        if k >= 2:
            typical = int(np.median(sizes))
            expected = noise((n_ref - typical, typical))
            pick = rng_for(k, typical).integers(0, k, size=replicates)
            for i, (stat, power) in enumerate(statistics):
                observed = stat(ref - chunks, chunks) ** power
                excess = np.maximum(observed - float(expected[i].mean()), 0.0)
                variations[i] = float(excess.mean()) ** (1 / power)
                nulls[i] = nulls[i] + excess[pick]
    return [NullSample(n, k, v) for n, v in zip(nulls, variations, strict=True)]


def _noise_many(
    statistics: Sequence[tuple[Statistic, int]],
    ref_counts: NDArray[np.int64],
    p: NDArray[np.float64],
    sizes: tuple[int, int],
    replicates: int,
    rng: np.random.Generator,
    scale_free: bool,
) -> list[NDArray[np.float64]]:
    """Each statistic, raised to its power, on one set of no-drift draws."""
    if scale_free:
        refs: NDArray[np.generic] = ref_counts
        draws = rng.multinomial(effective_size(*sizes), p, size=replicates)
    else:
        refs = rng.multinomial(sizes[0], p, size=replicates)
        draws = rng.multinomial(sizes[1], p, size=replicates)
    scored: dict[Statistic, NDArray[np.float64]] = {}
    shared = {s: getattr(distances, s) for s in ("ks", "anderson", "cell_deviance")}
    if sum(stat in shared.values() for stat, _ in statistics) >= 2:  # one pass scores them
        scored = {shared[s]: v for s, v in distances.replicate_statistics(refs, draws).items()}
    return [
        np.asarray(scored[stat] if stat in scored else stat(refs, draws), dtype=np.float64) ** power
        for stat, power in statistics
    ]
