"""Metric values and their confidence intervals, shared by every performance metric.

Metric shape
------------
Every headline metric is a :class:`MetricValue` dict with always the same keys::

    {"value": float | None, "ci_low": float | None, "ci_high": float | None,
     "ci_method": str | None, "reason": str | None}

``value`` is ``None`` when the metric is undefined for the window and ``reason`` says why
(no rows, only one class present in y_true, no scores given, ...). ``reason`` may also carry
a caveat next to a defined value. :func:`metric_value` widens an interval that misses its
point value so that it contains it.

Interval formulas
-----------------
Two-sided at level ``confidence``: :func:`normal_quantile` gives z, :func:`wilson_interval`
the Wilson score interval of a binomial proportion (the ROC AUC's DeLong variance lives with
the score histograms it is computed from, :mod:`watchkeeper.stats.score_histograms`).
:func:`safe_div` is the ratio with scikit-learn's ``zero_division=0`` convention that the
point values use.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

from watchkeeper.errors import InputError

__all__ = [
    "MetricValue",
    "metric_value",
    "normal_quantile",
    "safe_div",
    "wilson_interval",
]

FloatArray = npt.NDArray[np.float64]


class MetricValue(TypedDict):
    """One metric with its interval; see the module docstring."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    ci_method: str | None
    reason: str | None


def metric_value(
    value: float | None,
    ci_low: float | None = None,
    ci_high: float | None = None,
    ci_method: str | None = None,
    reason: str | None = None,
) -> MetricValue:
    """Build a :class:`MetricValue`; an interval is widened to contain ``value``."""
    if value is None or ci_low is None or ci_high is None:
        return {
            "value": None if value is None else float(value),
            "ci_low": None,
            "ci_high": None,
            "ci_method": None,
            "reason": reason,
        }
    v = float(value)
    return {
        "value": v,
        "ci_low": min(float(ci_low), v),
        "ci_high": max(float(ci_high), v),
        "ci_method": ci_method,
        "reason": reason,
    }


def normal_quantile(confidence: float) -> float:
    """The two-sided standard normal quantile z for ``confidence`` in (0, 1)."""
    if isinstance(confidence, bool) or not 0.0 < float(confidence) < 1.0:
        raise InputError(f"confidence must be a number in (0, 1), got {confidence!r}")
    return float(ndtri(0.5 + float(confidence) / 2.0))


def wilson_interval(
    successes: npt.ArrayLike, trials: npt.ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for a binomial proportion (vectorised; NaN where trials == 0).

    Examples
    --------
    >>> lo, hi = wilson_interval(8, 10)
    >>> round(float(lo), 3), round(float(hi), 3)
    (0.49, 0.943)
    """
    z = normal_quantile(confidence)
    s = np.asarray(successes, dtype=np.float64)
    t = np.asarray(trials, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = s / t
        denom = 1.0 + z * z / t
        centre = (p + z * z / (2.0 * t)) / denom
        half = z * np.sqrt(p * (1.0 - p) / t + z * z / (4.0 * t * t)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def safe_div(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """a / b with 0.0 where b == 0 (scikit-learn's zero_division=0)."""
    num = np.asarray(a, dtype=np.float64)
    den = np.asarray(b, dtype=np.float64)
    num, den = np.broadcast_arrays(num, den)
    return np.divide(num, den, out=np.zeros(num.shape), where=den != 0)
