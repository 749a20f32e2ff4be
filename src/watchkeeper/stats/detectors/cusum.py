"""CUSUM charts on log-likelihood ratios: Bernoulli for 0/1 error streams, Gaussian for metrics.

Page's CUSUM accumulates the log-likelihood ratio ``z_t`` of "changed" against "in control",

    S_t = max(0, S_{t-1} + z_t),     signal when S_t > h,

which is the fastest detector of a change from a known distribution to another known one for a
given mean time between false alarms (Lorden 1971; Moustakides 1986). ``h`` is in nats.

* :class:`BernoulliCUSUM`, for an error stream (1 = wrong prediction): in-control rate ``p0``,
  changed rate ``p1``; ``z = ln(p1/p0)`` on a 1 and ``ln((1-p1)/(1-p0))`` on a 0. Without
  ``p1`` the chart looks for a rate ``ratio`` times ``p0``.
* :class:`GaussianCUSUM`, for a metric: the value standardised by the in-control mean and
  standard deviation, ``u = (x - mean) / std``, feeds two charts, ``z = δu − δ²/2`` for a
  rise of the mean by ``δ = shift`` standard deviations and ``z = −δu − δ²/2`` for a fall
  (with ``shift = 1`` and ``h = 5`` this is the textbook tabular CUSUM ``k = 0.5, h = 5``).
  With ``spread = ρ`` a third chart, ``z = (1 − 1/ρ²) u²/2 − ln ρ``, looks for the standard
  deviation growing ``ρ`` times.

A parameter left ``None`` is estimated from the first ``warmup`` values after each (re)start,
during which nothing is signalled, and then held fixed. The thresholds here are raw; for a
threshold set from a mean time between false alarms use
:class:`~watchkeeper.stats.detectors.CalibratedCUSUM`. ``update_many`` computes all
increments of a block at once and the recursion with :func:`~.base.cusum_path`.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> errors = (rng.random(6000) < np.r_[np.full(4000, 0.10), np.full(2000, 0.20)]).astype(int)
>>> BernoulliCUSUM(p0=0.10).update_many(errors)[:3].tolist()  # the rate doubled at 4,000
[4205, 4345, 4524]
>>> metric = np.r_[rng.normal(5.0, 2.0, 300), rng.normal(7.0, 2.0, 100)]
>>> GaussianCUSUM(mean=5.0, std=2.0).update_many(metric)[:3].tolist()  # +1σ at 300
[303, 315, 319]

With ``p0`` known the chart keeps alarming while the rate stays high; with ``p0`` estimated it
learns the new rate after each restart instead.

References
----------
E. S. Page (1954). Continuous inspection schemes. Biometrika 41(1/2), 100-115.
G. Lorden (1971). Procedures for reacting to a change in distribution. Annals of
Mathematical Statistics 42(6), 1897-1908.
G. V. Moustakides (1986). Optimal stopping times for detecting changes in distributions.
Annals of Statistics 14(4), 1379-1387.
M. R. Reynolds, Z. G. Stoumbos (1999). A CUSUM chart for monitoring a proportion when
inspecting continuously. Journal of Quality Technology 31(1), 87-108.
D. M. Hawkins, D. H. Olwell (1998). Cumulative Sum Charts and Charting for Quality
Improvement. Springer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from watchkeeper.errors import InputError
from watchkeeper.stats.detectors.base import Detector, FloatArray, check_binary, cusum_path

__all__ = ["BernoulliCUSUM", "GaussianCUSUM", "alternative_rate", "gaussian_increments"]

BIG = 1e6  # |u| of a value off a zero standard deviation


def alternative_rate(p0: float, ratio: float) -> float:
    """The changed error rate a chart looks for: ``ratio · p0``, kept below 1 (at most
    halfway from ``p0`` to 1)."""
    return min(ratio * p0, 0.5 * (1.0 + p0))


def standardise(xs: FloatArray, mean: float, std: float) -> FloatArray:
    """``(xs - mean) / std``; with ``std == 0`` a value off the mean is ``±BIG``."""
    if std > 0:
        return np.asarray((xs - mean) / std, dtype=np.float64)
    return np.asarray(np.sign(xs - mean) * BIG, dtype=np.float64)


def standardise_one(x: float, mean: float, std: float) -> float:
    if std > 0:
        return (x - mean) / std
    return 0.0 if x == mean else math.copysign(BIG, x - mean)


def gaussian_increments(u: FloatArray, shift: float, spread: float | None) -> list[FloatArray]:
    """Log-likelihood-ratio increments of the mean-up, mean-down (and spread-up) charts."""
    half = 0.5 * shift * shift
    out = [shift * u - half, -shift * u - half]
    if spread is not None:
        out.append(0.5 * (1.0 - 1.0 / spread**2) * u * u - math.log(spread))
    return out


def gaussian_increments_one(u: float, shift: float, spread: float | None) -> list[float]:
    half = 0.5 * shift * shift
    out = [shift * u - half, -shift * u - half]
    if spread is not None:
        out.append(0.5 * (1.0 - 1.0 / spread**2) * u * u - math.log(spread))
    return out


def _check_common(threshold: float, warmup: int, min_warmup: int) -> None:
    if not threshold > 0 or not math.isfinite(threshold):
        raise InputError(f"threshold must be a finite number > 0, got {threshold}")
    if not isinstance(warmup, int) or warmup < min_warmup:
        raise InputError(f"warmup must be an integer >= {min_warmup}, got {warmup!r}")


class BernoulliCUSUM(Detector):
    """Bernoulli CUSUM for an error stream of 0/1 values (see the module docstring).

    Parameters
    ----------
    p0
        In-control error rate in (0, 1); ``None``: ``(errors + 0.5) / (warmup + 1)`` over
        the warm-up.
    p1
        Error rate to detect, in (p0, 1); needs ``p0``. ``None``: ``ratio · p0``.
    ratio
        Relative rise of the error rate to detect when ``p1`` is not given, ``> 1``.
    threshold
        ``h`` in nats.
    warmup
        Values used to estimate ``p0`` after each (re)start when it is not given.
    """

    type_name = "bernoulli_cusum"

    def __init__(
        self,
        p0: float | None = None,
        p1: float | None = None,
        *,
        ratio: float = 1.5,
        threshold: float = 7.0,
        warmup: int = 1000,
    ) -> None:
        if p0 is not None and not 0 < p0 < 1:
            raise InputError(f"p0 must be in (0, 1), got {p0}")
        if p1 is not None and (p0 is None or not p0 < p1 < 1):
            raise InputError(f"p1 must be in (p0, 1) and needs p0, got p1={p1}, p0={p0}")
        if not ratio > 1 or not math.isfinite(ratio):
            raise InputError(f"ratio must be a finite number > 1, got {ratio}")
        _check_common(threshold, warmup, 1)
        super().__init__()
        self.p0, self.p1 = p0, p1
        self.ratio = float(ratio)
        self.threshold = float(threshold)
        self.warmup = warmup
        self._restart()

    def _restart(self) -> None:
        self._n = 0  # values since the (re)start, warm-up included
        self._errors = 0  # errors seen in the warm-up
        self._s = 0.0
        self._set_rate(self.p0)

    def _set_rate(self, p0: float | None) -> None:
        self._p0 = p0
        if p0 is None:
            return
        p1 = self.p1 if self.p1 is not None else alternative_rate(p0, self.ratio)
        self._up = math.log(p1 / p0)
        self._down = math.log((1.0 - p1) / (1.0 - p0))

    @property
    def rates(self) -> tuple[float, float] | None:
        """``(p0, p1)`` in use, or ``None`` while ``p0`` is being estimated."""
        if self._p0 is None:
            return None
        return self._p0, self.p1 if self.p1 is not None else alternative_rate(self._p0, self.ratio)

    @property
    def statistic(self) -> float:
        return self._s

    def _check_value(self, x: float) -> float:
        if x not in (0.0, 1.0):
            check_binary(np.asarray([x]), "x")
        return x

    def _check_array(self, xs: FloatArray) -> FloatArray:
        return check_binary(xs)

    def _end_warmup(self) -> None:
        self._set_rate((self._errors + 0.5) / (self.warmup + 1))

    def _update_one(self, x: float) -> bool:
        self._n += 1
        if self._p0 is None:
            self._errors += int(x)
            if self._n == self.warmup:
                self._end_warmup()
            return False
        self._s = max(0.0, self._s + (self._up if x else self._down))
        return self._s > self.threshold

    def _scan(self, xs: FloatArray) -> int:
        start = 0
        if self._p0 is None:
            start = min(self.warmup - self._n, xs.size)
            self._errors += int(xs[:start].sum())
            self._n += start
            if self._n < self.warmup:
                return -1
            self._end_warmup()
        rest = xs[start:]
        s = cusum_path(np.where(rest > 0, self._up, self._down), self._s)
        hits = np.flatnonzero(s > self.threshold)
        if hits.size:
            return start + int(hits[0])
        self._n += rest.size
        if rest.size:
            self._s = float(s[-1])
        return -1

    def _params(self) -> dict[str, Any]:
        return {
            "p0": self.p0,
            "p1": self.p1,
            "ratio": self.ratio,
            "threshold": self.threshold,
            "warmup": self.warmup,
        }

    def _state(self) -> dict[str, Any]:
        return {"n": self._n, "errors": self._errors, "p0": self._p0, "s": self._s}

    def _load_state(self, state: dict[str, Any]) -> None:
        self._n = int(state["n"])
        self._errors = int(state["errors"])
        self._s = float(state["s"])
        self._set_rate(None if state["p0"] is None else float(state["p0"]))


class GaussianCUSUM(Detector):
    """Two-sided Gaussian CUSUM for a metric stream (see the module docstring).

    Parameters
    ----------
    mean, std
        In-control mean and standard deviation; ``None``: estimated from the warm-up (the
        sample standard deviation, or the root mean square about ``mean`` when it is given).
    shift
        Mean shift to detect, in standard deviations, ``> 0``.
    threshold
        ``h`` in nats, shared by every chart.
    spread
        Ratio of standard deviations to detect (``> 1``), or ``None`` for no spread chart.
    warmup
        Values used to estimate what is not given, after each (re)start.
    """

    type_name = "gaussian_cusum"

    def __init__(
        self,
        mean: float | None = None,
        std: float | None = None,
        *,
        shift: float = 1.0,
        threshold: float = 5.0,
        spread: float | None = None,
        warmup: int = 30,
    ) -> None:
        if mean is not None and not math.isfinite(mean):
            raise InputError(f"mean must be finite, got {mean}")
        if std is not None and not (std > 0 and math.isfinite(std)):
            raise InputError(f"std must be a finite number > 0, got {std}")
        if not shift > 0 or not math.isfinite(shift):
            raise InputError(f"shift must be a finite number > 0, got {shift}")
        if spread is not None and not (spread > 1 and math.isfinite(spread)):
            raise InputError(f"spread must be a finite number > 1 or None, got {spread}")
        _check_common(threshold, warmup, 2)
        super().__init__()
        self.mean, self.std = mean, std
        self.shift = float(shift)
        self.threshold = float(threshold)
        self.spread = None if spread is None else float(spread)
        self.warmup = warmup
        self._restart()

    def _restart(self) -> None:
        self._n = 0
        self._w_mean = 0.0  # warm-up mean and sum of squared deviations
        self._w_ssd = 0.0
        self._mu = self.mean
        self._sigma = self.std
        self._s = [0.0] * (3 if self.spread is not None else 2)

    @property
    def estimating(self) -> bool:
        return self._mu is None or self._sigma is None

    @property
    def statistics(self) -> list[float]:
        """Current values of the mean-up, mean-down (and spread) charts."""
        return list(self._s)

    def _end_warmup(self) -> None:
        n = self._n
        if self.mean is None:
            self._mu, ssd = self._w_mean, self._w_ssd / (n - 1)
        else:
            self._mu = self.mean
            ssd = (self._w_ssd + n * (self._w_mean - self.mean) ** 2) / n
        if self.std is None:
            self._sigma = math.sqrt(ssd)

    def _update_one(self, x: float) -> bool:
        self._n += 1
        if self.estimating:
            d = x - self._w_mean
            self._w_mean += d / self._n
            self._w_ssd += d * (x - self._w_mean)
            if self._n == self.warmup:
                self._end_warmup()
            return False
        assert self._mu is not None and self._sigma is not None
        u = standardise_one(x, self._mu, self._sigma)
        z = gaussian_increments_one(u, self.shift, self.spread)
        self._s = [max(0.0, s + zi) for s, zi in zip(self._s, z, strict=True)]
        return max(self._s) > self.threshold

    def _scan(self, xs: FloatArray) -> int:
        start = 0
        if self.estimating:
            start = min(self.warmup - self._n, xs.size)
            part = xs[:start]
            if part.size:
                n_old, m = self._n, part.size
                part_mean = float(part.mean())
                part_ssd = float(((part - part_mean) ** 2).sum())
                gap = part_mean - self._w_mean
                self._n = n_old + m
                self._w_mean += gap * m / self._n
                self._w_ssd += part_ssd + gap * gap * n_old * m / self._n
            if self._n < self.warmup:
                return -1
            self._end_warmup()
        assert self._mu is not None and self._sigma is not None
        rest = xs[start:]
        if not rest.size:
            return -1
        u = standardise(rest, self._mu, self._sigma)
        paths = [
            cusum_path(z, s)
            for z, s in zip(gaussian_increments(u, self.shift, self.spread), self._s, strict=True)
        ]
        over = np.flatnonzero(np.max(paths, axis=0) > self.threshold)
        if over.size:
            return start + int(over[0])
        self._n += rest.size
        self._s = [float(p[-1]) for p in paths]
        return -1

    def _params(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "std": self.std,
            "shift": self.shift,
            "threshold": self.threshold,
            "spread": self.spread,
            "warmup": self.warmup,
        }

    def _state(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "warmup_mean": self._w_mean,
            "warmup_ssd": self._w_ssd,
            "mean": self._mu,
            "std": self._sigma,
            "s": list(self._s),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        s = [float(v) for v in state["s"]]
        if len(s) != len(self._s):
            raise InputError(f"gaussian_cusum state: s must hold {len(self._s)} values")
        self._n = int(state["n"])
        self._w_mean = float(state["warmup_mean"])
        self._w_ssd = float(state["warmup_ssd"])
        self._mu = None if state["mean"] is None else float(state["mean"])
        self._sigma = None if state["std"] is None else float(state["std"])
        self._s = s
