"""A self-starting CUSUM whose threshold comes from a mean time between false alarms.

Instead of a raw threshold the user says how often a false alarm may come:
``false_alarm_every = 1_000_000`` (the default) means one false alarm per million values on
average on a stream that does not change (the warm-up after each restart included). Two things
make that figure hold without knowing the in-control parameters beforehand:

1. **Self-starting estimates.** Each value is scored against the parameters estimated from
   *all* values before it since the last restart, so the estimate keeps improving instead of
   being frozen after a short warm-up (whose error would shift the false-alarm rate).

   * ``kind="bernoulli"`` (0/1 error streams): ``p̂ = (errors + 0.5) / (n + 1)`` over the
     values before; the chart is the Bernoulli CUSUM for ``p̂ → p1 = rate_ratio · p̂``.
   * ``kind="gaussian"`` (metric streams): Hawkins's self-starting CUSUM. With ``x̄`` and
     ``s`` the mean and standard deviation of the ``n`` values before, ``T = (x − x̄) /
     (s·sqrt(1 + 1/n))`` follows Student's t with ``n − 1`` degrees of freedom when the stream
     is i.i.d. normal, so ``u = Φ⁻¹(F_t(T))`` is exactly N(0, 1) whatever the mean and
     variance. ``u`` feeds a mean-up and a mean-down chart for a shift of ``mean_shift``
     standard deviations and, unless ``spread_ratio == 1``, a chart for the standard
     deviation growing ``spread_ratio`` times (:mod:`.cusum` gives the increments).

2. **Thresholds from ARL0.** The first ``warmup`` values after a (re)start only feed the
   estimates. Then each chart gets the threshold whose in-control average run length is
   ``k · (false_alarm_every − warmup)`` for ``k`` charts (alarm rates of concurrent charts
   add), computed with the Markov-chain method of :mod:`.arl`: once for the Gaussian charts,
   whose in-control law does not depend on the data; for the Bernoulli chart at the end of
   the warm-up, for ``p̂`` rounded to two significant digits, and cached.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> errors = (rng.random(60_000) < np.r_[np.full(50_000, 0.10), np.full(10_000, 0.15)])
>>> d = CalibratedCUSUM("bernoulli", false_alarm_every=100_000)
>>> d.update_many(errors.astype(int)).tolist()  # the rate rose by half at 50,000
[50254]
>>> metric = np.r_[rng.normal(100.0, 5.0, 3000), rng.normal(100.0, 10.0, 500)]
>>> CalibratedCUSUM("gaussian").update_many(metric).tolist()  # the spread doubled at 3,000
[3028]

What the guarantee assumes (:data:`ASSUMES`, also in :meth:`CalibratedCUSUM.to_dict`): the
values of an unchanging stream are **independent** (and, for ``"gaussian"``, normal). Both the
self-starting scores and the ARL0 thresholds are computed for independent values; the
detector does not estimate or correct autocorrelation. On an autocorrelated stream (a metric
per window that wanders, errors that come in bursts) positive autocorrelation makes a
CUSUM's sums drift further than independent values would, and false alarms come much more
often than ``false_alarm_every`` says (docs/detectors.md has figures). Feed it values that are
independent once the change of interest is set aside: per-window metrics over windows long
enough to be nearly independent, residuals of a seasonal model, or thinned values.

References
----------
D. M. Hawkins (1987). Self-starting CUSUM charts for location and scale. The Statistician
36(4), 299-316.
M. R. Reynolds, Z. G. Stoumbos (1999). A CUSUM chart for monitoring a proportion when
inspecting continuously. Journal of Quality Technology 31(1), 87-108.
D. Brook, D. A. Evans (1972). An approach to the probability distribution of CUSUM run
length. Biometrika 59(3), 539-549.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import ndtri, stdtr

from watchkeeper.errors import InputError
from watchkeeper.stats.detectors.arl import (
    cached_bernoulli_threshold,
    cached_gaussian_threshold,
    cached_spread_threshold,
)
from watchkeeper.stats.detectors.base import Detector, FloatArray, check_binary, cusum_path
from watchkeeper.stats.detectors.cusum import (
    alternative_rate,
    gaussian_increments,
    gaussian_increments_one,
)

__all__ = ["CalibratedCUSUM"]

KINDS = ("bernoulli", "gaussian")
DEFAULTS = {
    "bernoulli": {"rate_ratio": 1.5, "warmup": 1000},
    "gaussian": {"mean_shift": 0.5, "spread_ratio": 1.5, "warmup": 30},
}
U_LIMIT = 37.5  # |u| cap: Φ⁻¹ of the smallest positive double is about -37.5
WALLACE_DF = 1000  # from this many degrees of freedom on, t → normal by Wallace's formula
#: What ``false_alarm_every`` assumes of an unchanging stream, stated in ``to_dict()``.
ASSUMES = (
    "independent values (gaussian: independent normal values); autocorrelation is not "
    "corrected: on a positively autocorrelated stream false alarms come more often than "
    "false_alarm_every says"
)


def _two_digits(p: float) -> float:
    return float(f"{p:.2g}")


def _normal_scores(t: FloatArray, df: FloatArray) -> FloatArray:
    """Φ⁻¹(F_t(t; df)): exact (in the lower tail, for accuracy) below ``WALLACE_DF`` degrees
    of freedom, Wallace's (1959) ``sqrt(df·ln(1 + t²/df))·(8df + 1)/(8df + 3)`` above, which is
    within 1e-5 of it there and several times faster."""
    u = np.empty_like(t)
    exact = df < WALLACE_DF
    if exact.any():
        te = t[exact]
        u[exact] = np.sign(te) * -ndtri(stdtr(df[exact], -np.abs(te)))
    if not exact.all():
        ta, na = t[~exact], df[~exact]
        u[~exact] = np.sign(ta) * np.sqrt(na * np.log1p(ta * ta / na)) * (8 * na + 1) / (8 * na + 3)
    return np.asarray(np.clip(u, -U_LIMIT, U_LIMIT), dtype=np.float64)


def _normal_score(t: float, df: float) -> float:
    """:func:`_normal_scores` for one value."""
    if df < WALLACE_DF:
        u = math.copysign(-float(ndtri(stdtr(df, -abs(t)))), t)
    else:
        u = math.copysign(math.sqrt(df * math.log1p(t * t / df)) * (8 * df + 1) / (8 * df + 3), t)
    return min(max(u, -U_LIMIT), U_LIMIT)


class CalibratedCUSUM(Detector):
    """Self-starting CUSUM calibrated to a mean time between false alarms (see module doc).

    Parameters
    ----------
    kind
        ``"bernoulli"`` for a 0/1 error stream, ``"gaussian"`` for a metric stream.
    false_alarm_every
        Wanted mean number of values between false alarms on an unchanging stream.
    rate_ratio
        Bernoulli: relative rise of the error rate to detect (default 1.5, i.e. +50 %).
    mean_shift
        Gaussian: mean shift to detect, in standard deviations (default 0.5).
    spread_ratio
        Gaussian: rise of the standard deviation to detect (default 1.5); 1 switches the
        spread chart off.
    warmup
        Values that only feed the estimates after each (re)start (default 1000 for
        Bernoulli, 30 for Gaussian).
    """

    type_name = "calibrated_cusum"

    def __init__(
        self,
        kind: str = "bernoulli",
        *,
        false_alarm_every: float = 1_000_000,
        rate_ratio: float | None = None,
        mean_shift: float | None = None,
        spread_ratio: float | None = None,
        warmup: int | None = None,
    ) -> None:
        if kind not in KINDS:
            raise InputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        given = {"rate_ratio": rate_ratio, "mean_shift": mean_shift, "spread_ratio": spread_ratio}
        for name, value in given.items():
            if value is not None and name not in DEFAULTS[kind]:
                raise InputError(f"{name} does not apply to kind={kind!r}")
        d = DEFAULTS[kind]
        self.kind = kind
        self.rate_ratio = float(rate_ratio if rate_ratio is not None else d.get("rate_ratio", 0))
        self.mean_shift = float(mean_shift if mean_shift is not None else d.get("mean_shift", 0))
        self.spread_ratio = float(
            spread_ratio if spread_ratio is not None else d.get("spread_ratio", 0)
        )
        self.warmup = int(warmup if warmup is not None else d["warmup"])
        self.false_alarm_every = float(false_alarm_every)
        self._validate()
        super().__init__()
        self._thresholds: list[float] = []
        if kind == "gaussian":
            self._thresholds = self._gaussian_thresholds()
        self._restart()

    def _validate(self) -> None:
        min_warmup = 2 if self.kind == "gaussian" else 1
        if self.warmup < min_warmup:
            raise InputError(f"warmup must be an integer >= {min_warmup}, got {self.warmup}")
        if not self.false_alarm_every >= 2 * self.warmup or math.isinf(self.false_alarm_every):
            raise InputError(
                f"false_alarm_every must be finite and at least twice warmup ({self.warmup}), "
                f"got {self.false_alarm_every:g}"
            )
        if self.kind == "bernoulli" and not self.rate_ratio > 1:
            raise InputError(f"rate_ratio must be > 1, got {self.rate_ratio}")
        if self.kind == "gaussian":
            if not 0 < self.mean_shift < 10:
                raise InputError(f"mean_shift must be in (0, 10), got {self.mean_shift}")
            if not 1 <= self.spread_ratio < 100:
                raise InputError(f"spread_ratio must be in [1, 100), got {self.spread_ratio}")

    @property
    def _spread(self) -> float | None:
        return self.spread_ratio if self.spread_ratio > 1 else None

    @property
    def _target(self) -> float:
        return self.false_alarm_every - self.warmup

    def _gaussian_thresholds(self) -> list[float]:
        charts = 3 if self._spread is not None else 2
        h_mean = cached_gaussian_threshold(self.mean_shift, charts * self._target)
        out = [h_mean, h_mean]
        if self._spread is not None:
            out.append(cached_spread_threshold(self._spread, charts * self._target))
        return out

    def _restart(self) -> None:
        self._n = 0
        self._sum = 0.0  # bernoulli: errors; gaussian: running mean
        self._ssd = 0.0  # gaussian: running sum of squared deviations
        if self.kind == "bernoulli":
            self._s = [0.0]
            self._thresholds = []
        else:
            self._s = [0.0] * len(self._thresholds)

    @property
    def thresholds(self) -> list[float]:
        """Each chart's threshold in nats (empty while a Bernoulli warm-up runs)."""
        return list(self._thresholds)

    @property
    def statistics(self) -> list[float]:
        return list(self._s)

    @property
    def in_control(self) -> dict[str, float] | None:
        """The current estimates of the in-control parameters (``None`` before any value)."""
        if self._n == 0:
            return None
        if self.kind == "bernoulli":
            return {"p0": (self._sum + 0.5) / (self._n + 1)}
        std = math.sqrt(self._ssd / (self._n - 1)) if self._n > 1 else 0.0
        return {"mean": self._sum, "std": std}

    def _check_value(self, x: float) -> float:
        if self.kind == "bernoulli" and x not in (0.0, 1.0):
            check_binary(np.asarray([x]), "x")
        return x

    def _check_array(self, xs: FloatArray) -> FloatArray:
        return check_binary(xs) if self.kind == "bernoulli" else xs

    # -- one value at a time --------------------------------------------------------------
    def _update_one(self, x: float) -> bool:
        if self.kind == "bernoulli":
            return self._bernoulli_one(x)
        return self._gaussian_one(x)

    def _bernoulli_one(self, x: float) -> bool:
        n, errors = self._n, self._sum
        self._n, self._sum = n + 1, errors + x
        if n < self.warmup:
            if self._n == self.warmup:
                self._set_bernoulli_threshold()
            return False
        p = (errors + 0.5) / (n + 1)
        p1 = alternative_rate(p, self.rate_ratio)
        z = math.log(p1 / p) if x else math.log1p(-p1) - math.log1p(-p)
        self._s[0] = max(0.0, self._s[0] + z)
        return self._s[0] > self._thresholds[0]

    def _set_bernoulli_threshold(self) -> None:
        p = _two_digits((self._sum + 0.5) / (self._n + 1))
        self._thresholds = [cached_bernoulli_threshold(p, self.rate_ratio, self._target)]

    def _gaussian_one(self, x: float) -> bool:
        n, mean, ssd = self._n, self._sum, self._ssd
        self._n = n + 1
        d = x - mean
        self._sum = mean + d / self._n
        self._ssd = ssd + d * (x - self._sum)
        if n < self.warmup:
            return False
        if ssd > 0:
            t = d / math.sqrt(ssd / (n - 1) * (n + 1) / n)
            u = _normal_score(t, n - 1.0)
        else:
            u = 0.0 if d == 0 else math.copysign(U_LIMIT, d)
        z = gaussian_increments_one(u, self.mean_shift, self._spread)
        self._s = [max(0.0, s + zi) for s, zi in zip(self._s, z, strict=True)]
        return any(s > h for s, h in zip(self._s, self._thresholds, strict=True))

    # -- a block at a time ----------------------------------------------------------------
    def _scan(self, xs: FloatArray) -> int:
        start = min(max(self.warmup - self._n, 0), xs.size)
        if self.kind == "bernoulli":
            return self._bernoulli_scan(xs, start)
        return self._gaussian_scan(xs, start)

    def _bernoulli_scan(self, xs: FloatArray, start: int) -> int:
        if start:
            self._sum += float(xs[:start].sum())
            self._n += start
            if self._n < self.warmup:
                return -1
            self._set_bernoulli_threshold()
        rest = xs[start:]
        if not rest.size:
            return -1
        before = self._sum + np.cumsum(rest) - rest
        p = (before + 0.5) / (self._n + np.arange(rest.size) + 1.0)
        p1 = np.minimum(self.rate_ratio * p, 0.5 * (1.0 + p))
        z = np.where(rest > 0, np.log(p1 / p), np.log1p(-p1) - np.log1p(-p))
        s = cusum_path(z, self._s[0])
        hits = np.flatnonzero(s > self._thresholds[0])
        if hits.size:
            return start + int(hits[0])
        self._n += rest.size
        self._sum = float(before[-1] + rest[-1])
        self._s[0] = float(s[-1])
        return -1

    def _gaussian_scan(self, xs: FloatArray, start: int) -> int:
        n0, size = self._n, xs.size
        centre = self._sum if n0 else float(xs[0])
        d = xs - centre
        n_before = n0 + np.arange(size, dtype=np.float64)
        sum_before = n0 * (self._sum - centre) + np.cumsum(d) - d
        sq_before = self._ssd + n0 * (self._sum - centre) ** 2 + np.cumsum(d * d) - d * d
        safe_n = np.maximum(n_before, 1.0)
        mean_before = centre + sum_before / safe_n
        ssd_before = np.maximum(sq_before - sum_before * sum_before / safe_n, 0.0)
        if start < size:
            nb = n_before[start:]
            dev = xs[start:] - mean_before[start:]
            spread = ssd_before[start:]
            scale = np.sqrt(np.where(spread > 0, spread, 1.0) / (nb - 1.0) * (nb + 1.0) / nb)
            u = _normal_scores(dev / scale, nb - 1.0)
            u = np.where(spread > 0, u, np.sign(dev) * U_LIMIT)
            paths = [
                cusum_path(z, s)
                for z, s in zip(
                    gaussian_increments(u, self.mean_shift, self._spread), self._s, strict=True
                )
            ]
            over = np.zeros(u.size, dtype=bool)
            for path, h in zip(paths, self._thresholds, strict=True):
                over |= path > h
            hits = np.flatnonzero(over)
            if hits.size:
                return start + int(hits[0])
            self._s = [float(p[-1]) for p in paths]
        n = n0 + size
        total = n0 * (self._sum - centre) + float(d.sum())
        squares = self._ssd + n0 * (self._sum - centre) ** 2 + float((d * d).sum())
        self._ssd = max(squares - total * total / n, 0.0)
        self._sum = centre + total / n
        self._n = n
        return -1

    # -- state ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """:meth:`Detector.to_dict`, with ``"assumes"``: what the false-alarm guarantee
        assumes of the stream (:data:`ASSUMES`); :meth:`from_dict` ignores it."""
        return {**super().to_dict(), "assumes": ASSUMES}

    def _params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "false_alarm_every": self.false_alarm_every}
        if self.kind == "bernoulli":
            out["rate_ratio"] = self.rate_ratio
        else:
            out["mean_shift"] = self.mean_shift
            out["spread_ratio"] = self.spread_ratio
        out["warmup"] = self.warmup
        return out

    def _state(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "sum": self._sum,
            "ssd": self._ssd,
            "s": list(self._s),
            "thresholds": list(self._thresholds),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        s = [float(v) for v in state["s"]]
        if len(s) != len(self._s):
            raise InputError(f"calibrated_cusum state: s must hold {len(self._s)} values")
        self._n = int(state["n"])
        self._sum = float(state["sum"])
        self._ssd = float(state["ssd"])
        self._s = s
        self._thresholds = [float(h) for h in state["thresholds"]]
