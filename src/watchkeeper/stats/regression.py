"""Regression performance from a mergeable aggregate of exact sums.

The error is ``e = y_pred - y_true`` (so a positive ``mean_error`` means over-prediction).
:class:`RegressionAggregate` keeps, with ``d = y_true - mean(y_true)``:

* n, mean(y_true) and the power sums of y_true about it: sum d, d^2, d^3, d^4 (sum d is
  the rounding residue of the stored mean; keeping it makes re-centering exact);
* the error-weighted sums sum e^2, e^2 d, e^2 d^2, plus sum |e| and sum e^4;
* mean(e) and the centered sum of squares sum (e - mean e)^2;
* for MAPE over rows with y_true != 0: their count, sum |e|/|y| and sum (|e|/|y|)^2 (|y|
  floored at machine epsilon, like scikit-learn), and the number of rows with y_true == 0
  that were left out.

Merging recenters every centered sum on the merged mean by the binomial shift formula (the
generalisation of Chan et al.'s pairwise update), so R^2 keeps full precision on targets with a
large offset. Metric values use the shape documented in
:mod:`watchkeeper.stats.intervals` (``value``, ``ci_low``, ``ci_high``, ``ci_method``,
``reason``). Intervals are normal approximations from the sums (``ci_method="normal"``):

* MAE, MAPE, mean_error: mean +- z * s / sqrt(n) with the sample standard deviation;
* RMSE: the normal interval of MSE (variance from sum e^4), then square-rooted;
* R^2 (``"delta"``): delta method on R^2 = 1 - mean(e^2) / mean(d^2) using the variances and
  the covariance of e^2 and d^2.

MAPE differs from scikit-learn's ``mean_absolute_percentage_error`` only when y_true has zeros:
scikit-learn divides by machine epsilon there (huge values); watchkeeper leaves those rows out
and says so in ``reason``. R^2 with constant y_true follows scikit-learn (1.0 for a perfect
fit, else 0.0), with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from watchkeeper.errors import InputError
from watchkeeper.stats.intervals import MetricValue, metric_value, normal_quantile
from watchkeeper.stats.labels import Labels

__all__ = ["RegressionAggregate"]

_FORMAT_VERSION = 1
_EPS = float(np.finfo(np.float64).eps)
_FLOAT_FIELDS = (
    "mean_y",
    "sum_d",
    "sum_d2",
    "sum_d3",
    "sum_d4",
    "sum_e2",
    "sum_e2_d",
    "sum_e2_d2",
    "sum_abs_e",
    "sum_e4",
    "mean_e",
    "m2_e",
    "sum_ape",
    "sum_ape2",
)
_INT_FIELDS = ("n", "skipped_rows", "n_ape", "zero_targets")
_ADDITIVE = ("skipped_rows", "sum_abs_e", "sum_e4", "n_ape", "zero_targets", "sum_ape", "sum_ape2")


@dataclass(frozen=True)
class RegressionAggregate:
    """Mergeable regression aggregate; build with :meth:`from_arrays` or :meth:`from_dict`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(100.0, 10.0, 1000)
    >>> pred = y + rng.normal(1.0, 2.0, 1000)
    >>> a = RegressionAggregate.from_arrays(y[:300], pred[:300])
    >>> b = RegressionAggregate.from_arrays(y[300:], pred[300:])
    >>> m = a.merge(b).metrics()
    >>> m["n"], round(m["mean_error"]["value"], 2), round(m["r2"]["value"], 3)
    (1000, 0.98, 0.946)
    """

    n: int = 0
    skipped_rows: int = 0
    mean_y: float = 0.0
    sum_d: float = 0.0
    sum_d2: float = 0.0
    sum_d3: float = 0.0
    sum_d4: float = 0.0
    sum_e2: float = 0.0
    sum_e2_d: float = 0.0
    sum_e2_d2: float = 0.0
    sum_abs_e: float = 0.0
    sum_e4: float = 0.0
    mean_e: float = 0.0
    m2_e: float = 0.0
    n_ape: int = 0
    zero_targets: int = 0
    sum_ape: float = 0.0
    sum_ape2: float = 0.0

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"{name} must be an integer >= 0, got {value!r}")
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InputError(f"{name} must be a number, got {value!r}")
            if not np.isfinite(value):
                raise InputError(f"{name} is not finite (values too large, |y| above ~1e75?)")
        if self.n_ape + self.zero_targets != self.n:
            raise InputError("n_ape + zero_targets must equal n")

    @classmethod
    def from_arrays(cls, y_true: Labels, y_pred: Labels) -> Self:
        """Aggregate one batch; rows where y_true or y_pred is NaN / None are skipped."""
        try:
            y = np.asarray(y_true, dtype=np.float64)
            f = np.asarray(y_pred, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"y_true and y_pred must be numeric: {exc}") from None
        if y.ndim != 1 or f.ndim != 1:
            raise InputError(f"y_true and y_pred must be 1-D, got shapes {y.shape}, {f.shape}")
        if len(y) != len(f):
            raise InputError(f"y_true and y_pred differ in length: {len(y)} != {len(f)}")
        keep = ~(np.isnan(y) | np.isnan(f))
        y, f = y[keep], f[keep]
        if not (np.isfinite(y).all() and np.isfinite(f).all()):
            raise InputError("y_true and y_pred must be finite (inf found)")
        n = len(y)
        if n == 0:
            return cls(skipped_rows=int((~keep).sum()))
        with np.errstate(over="ignore", invalid="ignore"):  # overflow -> InputError below
            mean_y = float(y.mean())
            mean_y += float((y - mean_y).mean())  # second pass: sum d == 0 to rounding
            d, e = y - mean_y, f - y
            e2, d2, abs_e = e * e, d * d, np.abs(e)
            mean_e = float(e.mean())
            nonzero = y != 0
            ape = abs_e[nonzero] / np.maximum(np.abs(y[nonzero]), _EPS)  # as scikit-learn
            return cls(
                n=n,
                skipped_rows=int((~keep).sum()),
                mean_y=mean_y,
                sum_d=float(d.sum()),
                sum_d2=float(d2.sum()),
                sum_d3=float((d2 * d).sum()),
                sum_d4=float((d2 * d2).sum()),
                sum_e2=float(e2.sum()),
                sum_e2_d=float((e2 * d).sum()),
                sum_e2_d2=float((e2 * d2).sum()),
                sum_abs_e=float(abs_e.sum()),
                sum_e4=float((e2 * e2).sum()),
                mean_e=mean_e,
                m2_e=float(((e - mean_e) ** 2).sum()),
                n_ape=int(nonzero.sum()),
                zero_targets=int(n - nonzero.sum()),
                sum_ape=float(ape.sum()),
                sum_ape2=float((ape * ape).sum()),
            )

    def merge(self, other: RegressionAggregate) -> Self:
        """Aggregate of both inputs' rows (exact up to floating-point rounding)."""
        if not isinstance(other, RegressionAggregate):
            raise InputError(f"other must be a RegressionAggregate, got {type(other).__name__}")
        a, b = self, other
        n = a.n + b.n
        if n == 0:
            return type(self)(skipped_rows=a.skipped_rows + b.skipped_rows)
        mean_y = a.mean_y + (b.mean_y - a.mean_y) * (b.n / n)
        try:
            sa, sb = _shift(a, a.mean_y - mean_y), _shift(b, b.mean_y - mean_y)
        except OverflowError:
            raise InputError("merged sums overflow (values too large, |y| above ~1e75?)") from None
        delta_e = b.mean_e - a.mean_e
        fields: dict[str, Any] = {k: getattr(a, k) + getattr(b, k) for k in _ADDITIVE}
        fields.update({k: sa[k] + sb[k] for k in sa})
        return type(self)(
            n=n,
            mean_y=mean_y,
            mean_e=a.mean_e + delta_e * (b.n / n),
            m2_e=a.m2_e + b.m2_e + delta_e**2 * (a.n * b.n / n),
            **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the sums."""
        names = (*_INT_FIELDS, *_FLOAT_FIELDS)
        return {
            "kind": "regression",
            "version": _FORMAT_VERSION,
            **{k: getattr(self, k) for k in names},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`; :class:`InputError` on a malformed dict."""
        if not isinstance(d, dict) or d.get("kind") != "regression":
            raise InputError("d must be a dict with kind == 'regression'")
        if d.get("version") != _FORMAT_VERSION:
            raise InputError(f"unsupported regression aggregate version {d.get('version')!r}")
        missing = [k for k in (*_INT_FIELDS, *_FLOAT_FIELDS) if k not in d]
        if missing:
            raise InputError(f"regression aggregate dict lacks {missing}")
        fields: dict[str, Any] = {k: d[k] for k in _INT_FIELDS}
        fields.update(
            {
                k: float(d[k]) if isinstance(d[k], int) and not isinstance(d[k], bool) else d[k]
                for k in _FLOAT_FIELDS
            }
        )
        return cls(**fields)

    def metrics(self, confidence: float = 0.95) -> dict[str, Any]:
        """MAE, RMSE, MAPE, R^2 and mean_error (bias) with intervals.

        Returns ``{"task": "regression", "n", "skipped_rows", "confidence",
        "mape_zero_targets", "mae", "rmse", "mape", "r2", "mean_error"}`` where the last five
        are :class:`~watchkeeper.stats.intervals.MetricValue` dicts.
        """
        z = normal_quantile(confidence)
        n = self.n
        out: dict[str, Any] = {
            "task": "regression",
            "n": n,
            "skipped_rows": self.skipped_rows,
            "confidence": float(confidence),
            "mape_zero_targets": self.zero_targets,
        }
        if n == 0:
            why = "no rows in the window" + (
                f" ({self.skipped_rows} skipped for nulls)" if self.skipped_rows else ""
            )
            for k in ("mae", "rmse", "mape", "r2", "mean_error"):
                out[k] = metric_value(None, reason=why)
            return out
        few = "interval needs at least 2 rows"
        mae, mse = self.sum_abs_e / n, self.sum_e2 / n
        out["mae"] = _normal(mae, self.sum_e2 / n - mae * mae, n, z, few, low=0.0)
        mse_ci = _normal(mse, self.sum_e4 / n - mse * mse, n, z, few, low=0.0)
        out["rmse"] = metric_value(
            np.sqrt(mse),
            None if mse_ci["ci_low"] is None else np.sqrt(mse_ci["ci_low"]),
            None if mse_ci["ci_high"] is None else np.sqrt(mse_ci["ci_high"]),
            "normal",
            mse_ci["reason"],
        )
        if self.n_ape == 0:
            out["mape"] = metric_value(None, reason="every y_true is 0")
        else:
            mape = self.sum_ape / self.n_ape
            note = (
                f"{self.zero_targets} rows with y_true == 0 left out" if self.zero_targets else None
            )
            out["mape"] = _normal(
                mape,
                self.sum_ape2 / self.n_ape - mape * mape,
                self.n_ape,
                z,
                few if note is None else f"{note}; {few}",
                low=0.0,
                note=note,
            )
        out["mean_error"] = _normal(self.mean_e, self.m2_e / n, n, z, few)
        out["r2"] = self._r2(z)
        return out

    def _r2(self, z: float) -> MetricValue:
        n = self.n
        if n < 2:
            return metric_value(None, reason="R^2 needs at least 2 rows")
        sst = self.sum_d2 - self.sum_d**2 / n  # about the exact mean, not the stored one
        if sst <= 0.0:
            perfect = self.sum_e2 == 0.0
            return metric_value(
                1.0 if perfect else 0.0,
                reason=(
                    "y_true is constant; R^2 set to "
                    + ("1.0 (perfect predictions)" if perfect else "0.0")
                    + " as scikit-learn does"
                ),
            )
        mse, var_y = self.sum_e2 / n, sst / n
        r2 = 1.0 - mse / var_y
        var_e2 = self.sum_e4 / n - mse * mse
        var_d2 = self.sum_d4 / n - var_y * var_y
        cov = self.sum_e2_d2 / n - mse * var_y
        var = (var_e2 / var_y**2 - 2.0 * mse * cov / var_y**3 + mse**2 * var_d2 / var_y**4) / n
        half = z * float(np.sqrt(max(var, 0.0)))
        return metric_value(r2, r2 - half, min(r2 + half, 1.0), "delta")


def _shift(a: RegressionAggregate, h: float) -> dict[str, float]:
    """a's power sums re-centered from mean_y to mean_y - h (d -> d + h, binomial expansion)."""
    n, s1, s2, s3, s4 = a.n, a.sum_d, a.sum_d2, a.sum_d3, a.sum_d4
    t0, t1, t2 = a.sum_e2, a.sum_e2_d, a.sum_e2_d2
    return {
        "sum_d": s1 + n * h,
        "sum_d2": s2 + 2 * h * s1 + n * h**2,
        "sum_d3": s3 + 3 * h * s2 + 3 * h**2 * s1 + n * h**3,
        "sum_d4": s4 + 4 * h * s3 + 6 * h**2 * s2 + 4 * h**3 * s1 + n * h**4,
        "sum_e2": t0,
        "sum_e2_d": t1 + h * t0,
        "sum_e2_d2": t2 + 2 * h * t1 + h**2 * t0,
    }


def _normal(
    mean: float,
    var: float,
    n: int,
    z: float,
    few: str,
    *,
    low: float | None = None,
    note: str | None = None,
) -> MetricValue:
    """mean +- z * s / sqrt(n) with the sample variance s^2 = var * n / (n - 1)."""
    if n < 2:
        return metric_value(mean, reason=few)
    half = z * float(np.sqrt(max(var, 0.0) / (n - 1)))
    lo = mean - half if low is None else max(mean - half, low)
    return metric_value(mean, lo, mean + half, "normal", note)
