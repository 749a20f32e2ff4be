"""Page-Hinkley test: a CUSUM of deviations from the running mean (river's variant).

With ``x̄_t`` the mean of the values since the last restart (``x_t`` included), the detector
keeps two fading sums of deviations,

    U_t = α · U_{t-1} + (x_t − x̄_t − δ),      D_t = α · D_{t-1} + (x_t − x̄_t + δ),

and signals an increase when ``U_t − min_{s<=t} U_s > λ``, a decrease when
``max_{s<=t} D_s − D_t > λ`` (``mode`` chooses which), once ``min_instances`` values were
seen. ``δ`` is the magnitude of change that is tolerated, ``λ`` the threshold and ``α`` a
forgetting factor (1 = none). It assumes nothing about the distribution, but ``λ`` is in the
units of the stream, so it must be chosen per stream; the defaults are river's. After a
detection the detector restarts. ``update_many`` runs the two linear recursions with
``scipy.signal.lfilter`` and the running extremes with ``numpy`` accumulations.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> stream = np.r_[rng.normal(0.0, 1.0, 1000), rng.normal(3.0, 1.0, 1000)]
>>> PageHinkley().update_many(stream).tolist()
[1013]

References
----------
E. S. Page (1954). Continuous inspection schemes. Biometrika 41(1/2), 100-115.
D. V. Hinkley (1971). Inference about the change-point from cumulative sum tests.
Biometrika 58(3), 509-523.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.signal import lfilter

from watchkeeper.errors import InputError
from watchkeeper.stats.detectors.base import Detector, FloatArray, decode_float, encode_float

__all__ = ["PageHinkley"]

MODES = ("up", "down", "both")


class PageHinkley(Detector):
    """Page-Hinkley change detector (see the module docstring).

    Parameters
    ----------
    min_instances
        Values needed since the last restart before a change can be signalled.
    delta
        Tolerated magnitude of change (in the stream's units), ``>= 0``.
    threshold
        λ, the detection threshold (in the stream's units), ``> 0``.
    alpha
        Forgetting factor of the sums, in (0, 1].
    mode
        ``"up"`` (increases), ``"down"`` (decreases) or ``"both"``.
    """

    type_name = "page_hinkley"

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        if not isinstance(min_instances, int) or min_instances < 1:
            raise InputError(f"min_instances must be an integer >= 1, got {min_instances!r}")
        if not delta >= 0:
            raise InputError(f"delta must be >= 0, got {delta}")
        if not threshold > 0:
            raise InputError(f"threshold must be > 0, got {threshold}")
        if not 0 < alpha <= 1:
            raise InputError(f"alpha must be in (0, 1], got {alpha}")
        if mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        super().__init__()
        self.min_instances = min_instances
        self.delta = float(delta)
        self.threshold = float(threshold)
        self.alpha = float(alpha)
        self.mode = mode
        self._restart()

    def _restart(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._sum_up = 0.0
        self._sum_down = 0.0
        self._min_up = math.inf
        self._max_down = -1.0  # river's starting value

    def _decide(self, test_up: float, test_down: float) -> bool:
        up = self.mode != "down" and test_up > self.threshold
        down = self.mode != "up" and test_down > self.threshold
        return up or down

    def _update_one(self, x: float) -> bool:
        self._n += 1
        self._mean += (x - self._mean) / self._n
        dev = x - self._mean
        self._sum_up = self.alpha * self._sum_up + dev - self.delta
        self._sum_down = self.alpha * self._sum_down + dev + self.delta
        self._min_up = min(self._min_up, self._sum_up)
        self._max_down = max(self._max_down, self._sum_down)
        if self._n < self.min_instances:
            return False
        return self._decide(self._sum_up - self._min_up, self._max_down - self._sum_down)

    def _scan(self, xs: FloatArray) -> int:
        n = self._n + np.arange(1, xs.size + 1, dtype=np.float64)
        centre = self._mean if self._n else float(xs[0])
        mean = centre + (self._n * (self._mean - centre) + np.cumsum(xs - centre)) / n
        dev = xs - mean
        den = [1.0, -self.alpha]
        sum_up = lfilter([1.0], den, dev - self.delta, zi=[self.alpha * self._sum_up])[0]
        sum_down = lfilter([1.0], den, dev + self.delta, zi=[self.alpha * self._sum_down])[0]
        min_up = np.minimum.accumulate(np.minimum(sum_up, self._min_up))
        max_down = np.maximum.accumulate(np.maximum(sum_down, self._max_down))
        ready = n >= self.min_instances
        up = (sum_up - min_up > self.threshold) & (self.mode != "down")
        down = (max_down - sum_down > self.threshold) & (self.mode != "up")
        hits = np.flatnonzero(ready & (up | down))
        if hits.size:
            return int(hits[0])
        self._n += xs.size
        self._mean = float(mean[-1])
        self._sum_up, self._sum_down = float(sum_up[-1]), float(sum_down[-1])
        self._min_up, self._max_down = float(min_up[-1]), float(max_down[-1])
        return -1

    def _params(self) -> dict[str, Any]:
        return {
            "min_instances": self.min_instances,
            "delta": self.delta,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "mode": self.mode,
        }

    def _state(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "mean": self._mean,
            "sum_up": self._sum_up,
            "sum_down": self._sum_down,
            "min_up": encode_float(self._min_up),
            "max_down": self._max_down,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self._n = int(state["n"])
        self._mean = float(state["mean"])
        self._sum_up = float(state["sum_up"])
        self._sum_down = float(state["sum_down"])
        self._min_up = decode_float(state["min_up"])
        self._max_down = float(state["max_down"])
