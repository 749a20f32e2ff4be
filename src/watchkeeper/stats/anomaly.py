"""Anomalies in a metric's own time series: a band from reference windows, and a seasonal,
outlier-robust expected range for a new point.

:func:`band` is the plain band ``mean ± k·σ`` of a metric over the reference windows.

:func:`seasonal_anomaly` judges a new point ``(t, x)`` against the metric's history:

1. **Seasons.** Each history point falls in an hour-of-day bin (24 bins, season ``daily``) and
   an hour-of-week bin (168 bins, ``weekly``); ``none`` puts everything in one bin. Times are
   UTC unless ``utc_offset`` (hours) moves them to local wall time.
2. **Robust fit.** The expected value of a point is the **median** of its bin. Each history
   point is also predicted from the median of its bin *without it* (leave-one-out), and the
   spread is the normal-consistent **MAD** of those prediction errors: honest errors of the
   same kind of prediction, so a few outliers move neither the expected value nor the spread,
   and a bin of few points shows its larger error. Bins of one point predict nothing.
3. **Which season.** Among the seasons whose bin for ``t`` holds at least ``min_points``
   history points, the one with the smallest spread wins: a weekly pattern is used only when
   the history covers enough weeks for it to predict better than the daily one.

``score = (x − expected) / spread`` and ``is_anomaly = |score| > k``.

Examples
--------
>>> import numpy as np
>>> hours = np.arange(24 * 14)                                # two weeks, hourly
>>> ts = np.datetime64("2024-01-01T00:00") + hours.astype("timedelta64[h]")
>>> rng = np.random.default_rng(0)
>>> values = 100 + 20 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 1, hours.size)
>>> values[[30, 100, 200]] = [500.0, -80.0, 900.0]            # outliers in the history
>>> r = seasonal_anomaly(ts, values, np.datetime64("2024-01-15T06:00"), 119.0)
>>> r.season, round(r.expected, 1), r.is_anomaly
('daily: hour 06', 119.7, False)
>>> seasonal_anomaly(ts, values, np.datetime64("2024-01-15T06:00"), 100.0).is_anomaly
True
>>> band([10.0, 12.0, 11.0, 13.0], k=2)
(8.918..., 14.081...)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.errors import InputError

__all__ = ["AnomalyResult", "band", "robust_scale", "seasonal_anomaly", "to_epoch_seconds"]

FloatArray = NDArray[np.float64]
MAD_TO_SIGMA = 1.482602218505602  # 1 / Φ⁻¹(3/4): the MAD of N(0, σ²) is σ / 1.4826
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


@dataclass(frozen=True)
class AnomalyResult:
    """The judgement of one point against its metric's history (see the module docstring)."""

    expected: float  # median of the point's season in the history
    low: float  # expected − k · spread
    high: float  # expected + k · spread
    score: float  # (x − expected) / spread; ±inf when the history has no spread at all
    is_anomaly: bool  # |score| > k
    season: str  # "weekly: Tue hour 14", "daily: hour 14" or "none: all history"
    n_history: int  # history points the expected value was computed from
    spread: float  # robust scale of the season's leave-one-out prediction errors


def band(reference_values: ArrayLike, k: float = 3.0) -> tuple[float, float]:
    """``(mean − k·σ, mean + k·σ)`` of a metric over reference windows (σ with ``ddof=1``).

    Non-finite values (windows where the metric is undefined) are left out; at least two must
    remain.
    """
    if not k > 0 or not math.isfinite(k):
        raise InputError(f"k must be a finite number > 0, got {k}")
    values = _as_values(reference_values, "reference_values")
    values = values[np.isfinite(values)]
    if values.size < 2:
        raise InputError(f"reference_values must hold at least 2 finite values, got {values.size}")
    mean, std = float(values.mean()), float(values.std(ddof=1))
    return mean - k * std, mean + k * std


def robust_scale(residuals: ArrayLike) -> float:
    """Normal-consistent median absolute deviation, ``1.4826 · median(|r − median(r)|)``."""
    r = np.asarray(residuals, dtype=np.float64)
    if r.size == 0:
        return math.nan
    return MAD_TO_SIGMA * float(np.median(np.abs(r - np.median(r))))


def to_epoch_seconds(timestamps: Any, name: str = "timestamps") -> FloatArray:
    """Seconds since 1970-01-01 UTC from datetime64 values, numbers (taken as epoch seconds)
    or datetime-like objects (timezone-aware ones through ``.timestamp()``, naive ones as UTC
    wall time)."""
    arr = np.atleast_1d(np.asarray(timestamps))
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.datetime64):
        if np.isnat(arr).any():
            raise InputError(f"{name} must not hold NaT")
        return arr.astype("datetime64[ms]").astype(np.int64) / 1000.0
    if np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.complexfloating):
        out = arr.astype(np.float64)
    else:
        out = np.empty(arr.size)
        for i, item in enumerate(arr.tolist()):
            try:
                if getattr(item, "tzinfo", None) is not None:
                    out[i] = float(item.timestamp())
                else:
                    out[i] = float(np.datetime64(item, "ms").astype(np.int64) / 1000.0)
            except (TypeError, ValueError, AttributeError):
                raise InputError(f"{name}[{i}] is not a timestamp: {item!r}") from None
    if not np.isfinite(out).all():
        raise InputError(f"{name} must be finite")
    return out


def _as_values(values: ArrayLike, name: str) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numbers") from None
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    return arr


def _bins(seconds: FloatArray, season: str) -> NDArray[np.int64]:
    hours = np.floor(seconds / 3600.0).astype(np.int64)
    if season == "none":
        return np.zeros(hours.size, dtype=np.int64)
    if season == "daily":
        return hours % 24
    days = np.floor_divide(hours, 24)
    return ((days + EPOCH_WEEKDAY) % 7) * 24 + hours % 24


@dataclass(frozen=True)
class _Fit:
    season: str
    expected: float
    spread: float
    n_points: int


def _loo_medians(v: FloatArray, starts: NDArray[np.intp], counts: NDArray[np.intp]) -> FloatArray:
    """For values sorted within bins: each value's bin median without that value (bins of two
    or more values; NaN for a bin of one)."""
    m = np.repeat(counts, counts)
    start = np.repeat(starts, counts)
    r = np.arange(v.size) - start  # rank within the bin
    out = np.full(v.size, np.nan)
    even = (m % 2 == 0) & (m >= 2)
    half = m // 2
    pick = np.where(r < half, start + half, start + half - 1)
    out[even] = v[pick[even]]
    odd = (m % 2 == 1) & (m >= 3)
    c = (m - 1) // 2
    first = np.where(r < c, c, c - 1)
    second = np.where(r > c, c, c + 1)
    lo, hi = (start + first)[odd], (start + second)[odd]
    out[odd] = 0.5 * (v[lo] + v[hi])
    return out


def _fit(values: FloatArray, bins: NDArray[np.int64], target: int, season: str) -> _Fit | None:
    order = np.lexsort((values, bins))
    v, b = values[order], bins[order]
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    counts = np.diff(np.r_[starts, b.size])
    where = np.flatnonzero(b[starts] == target)
    if not where.size:
        return None
    loo = _loo_medians(v, starts, counts)
    keep = np.isfinite(loo)
    if not keep.any():
        return None
    i = int(where[0])
    lo, hi = starts[i] + (counts[i] - 1) // 2, starts[i] + counts[i] // 2
    expected = 0.5 * (float(v[lo]) + float(v[hi]))
    return _Fit(season, expected, robust_scale(v[keep] - loo[keep]), int(counts[i]))


def _season_label(season: str, seconds: float) -> str:
    hour = math.floor(seconds / 3600.0)
    if season == "daily":
        return f"daily: hour {hour % 24:02d}"
    if season == "weekly":
        day = DAYS[(hour // 24 + EPOCH_WEEKDAY) % 7]
        return f"weekly: {day} hour {hour % 24:02d}"
    return "none: all history"


def seasonal_anomaly(
    timestamps: Any,
    values: ArrayLike,
    t: Any,
    x: float,
    *,
    k: float = 4.0,
    min_points: int = 3,
    utc_offset: float = 0.0,
) -> AnomalyResult:
    """Judge the new point ``(t, x)`` against the metric's history ``(timestamps, values)``.

    See the module docstring for the method. Non-finite history values are left out; at
    least ``min_points`` (>= 2) finite ones are needed. ``k`` is in robust standard deviations.
    """
    if not k > 0 or not math.isfinite(k):
        raise InputError(f"k must be a finite number > 0, got {k}")
    if not isinstance(min_points, int) or min_points < 2:
        raise InputError(f"min_points must be an integer >= 2, got {min_points!r}")
    if not math.isfinite(utc_offset):
        raise InputError(f"utc_offset must be finite, got {utc_offset}")
    vals = _as_values(values, "values")
    secs = to_epoch_seconds(timestamps)
    if secs.size != vals.size:
        raise InputError(
            f"timestamps and values must have the same length, got {secs.size} and {vals.size}"
        )
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise InputError(f"x must be a number, got {x!r}") from None
    if not math.isfinite(x):
        raise InputError(f"x must be finite, got {x}")
    when = float(to_epoch_seconds(t, "t")[0]) + 3600.0 * utc_offset
    finite = np.isfinite(vals)
    vals, secs = vals[finite], secs[finite] + 3600.0 * utc_offset
    if vals.size < min_points:
        raise InputError(
            f"values must hold at least {min_points} finite history values, got {vals.size}"
        )
    best: _Fit | None = None
    for season in ("none", "daily", "weekly"):
        target = int(_bins(np.asarray([when]), season)[0])
        fit = _fit(vals, _bins(secs, season), target, season)
        if fit is None or fit.n_points < min_points or math.isnan(fit.spread):
            continue
        if best is None or fit.spread < best.spread:
            best = fit
    assert best is not None  # "none" always qualifies: one bin of >= min_points >= 2 values
    gap = x - best.expected
    if best.spread > 0:
        score = gap / best.spread
    else:
        score = 0.0 if gap == 0 else math.copysign(math.inf, gap)
    return AnomalyResult(
        expected=best.expected,
        low=best.expected - k * best.spread,
        high=best.expected + k * best.spread,
        score=score,
        is_anomaly=bool(abs(score) > k),
        season=_season_label(best.season, when),
        n_history=best.n_points,
        spread=best.spread,
    )
