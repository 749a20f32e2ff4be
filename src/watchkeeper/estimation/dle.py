"""Direct loss estimation (DLE) of a regression model on an unlabelled window.

Two models of the model's error are fitted on the labelled reference, from the features and
the prediction: one of the absolute error ``|y - ŷ|`` and one of the squared error
``(y - ŷ)^2`` (scikit-learn's ``HistGradientBoostingRegressor`` with the Poisson loss, whose log
link keeps the predicted errors positive). A window's estimated MAE is the mean predicted
absolute error, its estimated RMSE the root of the mean predicted squared error.

Honest fitting: the reference (sampled down to ``MAX_FIT_ROWS`` rows when larger) is split in
two halves at random. The error models are fitted
on the first; the second, which they have not seen, sets how far the realized errors stray
from the predicted ones, which is what the intervals need:

* the variance of a row's absolute error given its inputs is ``E[e^2|x] - E[|e| | x]^2``,
  read from the two models and scaled by ``c_abs`` so that it matches, on the held-out half,
  the mean of ``(|e| - predicted |e|)^2``;
* the variance of a row's squared error is taken proportional to its predicted squared error
  squared, ``c_sq · ŝ^2``, with ``c_sq`` measured on the held-out half the same way.

Rows are independent, so the realized MAE of a window of n rows falls within
``estimate ± z · sqrt(sum v_i) / n`` (``"dle-normal"``); RMSE's interval is the square root of
the mean squared error's. The window's state is five sums (rows, predicted |e|, predicted e^2,
and the two variances): it merges by addition.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.uniform(0, 1, size=(4000, 1))
>>> y_pred = 3 * x[:, 0]
>>> y = y_pred + rng.normal(0, 0.2 + x[:, 0], size=4000)   # noise grows with x
>>> dle = DLE.fit(x, y, y_pred)
>>> x_new = rng.uniform(0.8, 1.0, size=(1000, 1))            # a shift to the noisy region
>>> est = dle.estimate(dle.state(x_new, 3 * x_new[:, 0]))
>>> bool(1.0 < est["metrics"]["rmse"]["value"] < 1.2)        # the noise sd there: 1.0 to 1.2
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InputError
from watchkeeper.stats.intervals import MetricValue, metric_value, normal_quantile

__all__ = ["DLE", "DLEState"]

MIN_ROWS = 40
MAX_FIT_ROWS = 100_000  # a larger reference is sampled down to this many rows to fit on
FloatArray = npt.NDArray[np.float64]


@dataclass
class DLEState:
    """The mergeable sums of a window: rows, predicted |e|, predicted e^2, their variances."""

    rows: int = 0
    abs_error: float = 0.0
    sq_error: float = 0.0
    abs_var: float = 0.0
    sq_var: float = 0.0
    skipped_rows: int = 0

    def merge(self, other: DLEState) -> DLEState:
        return DLEState(
            self.rows + other.rows,
            self.abs_error + other.abs_error,
            self.sq_error + other.sq_error,
            self.abs_var + other.abs_var,
            self.sq_var + other.sq_var,
            self.skipped_rows + other.skipped_rows,
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DLEState:
        return cls(**data)


def _inputs(x: npt.ArrayLike, y_pred: npt.ArrayLike) -> tuple[FloatArray, Any]:
    features = np.asarray(x, dtype=np.float64)
    pred = np.asarray(y_pred, dtype=np.float64)
    if features.ndim != 2 or pred.shape != (features.shape[0],):
        raise InputError(
            f"DLE needs an (n, d) feature matrix and n predictions, got {features.shape} "
            f"and {pred.shape}"
        )
    return np.column_stack([features, pred]), np.isfinite(pred)


def _one_thread() -> Any:
    """OpenMP limited to one thread: the gradient boosting's threads spin while they wait, and
    on a machine shared with other work (a monitoring job's usual place) that made fitting ten
    times slower than one thread (measured: 46 s against 4.4 s for 20,000 rows, 2 busy cores)."""
    import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime the limit must see)
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def _regressor(target: FloatArray, categorical: list[bool] | None, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    loss = "poisson" if target.sum() > 0 else "squared_error"
    cats = None if not categorical or not any(categorical) else [*categorical, False]
    return HistGradientBoostingRegressor(loss=loss, categorical_features=cats, random_state=seed)


@dataclass
class DLE:
    """A fitted DLE estimator: the two error models and the held-out variance factors."""

    abs_model: Any
    sq_model: Any
    c_abs: float
    c_sq: float
    holdout: dict[str, Any]

    @classmethod
    def fit(
        cls,
        x: npt.ArrayLike,
        y_true: npt.ArrayLike,
        y_pred: npt.ArrayLike,
        *,
        categorical: list[bool] | None = None,
        seed: int = 0,
    ) -> DLE:
        """Fit on the labelled reference: ``x`` (n, d) features (NaN = missing; categorical
        columns as integer codes, flagged in ``categorical``), the targets and predictions."""
        inputs, ok = _inputs(x, y_pred)
        y = np.asarray(y_true, dtype=np.float64)
        if y.shape != ok.shape:
            raise InputError(f"y_true has shape {y.shape}, the predictions {ok.shape}")
        ok &= np.isfinite(y)
        if ok.sum() < MIN_ROWS:
            raise InputError(f"DLE needs at least {MIN_ROWS} labelled rows, got {int(ok.sum())}")
        rng = np.random.default_rng(seed)
        rows = np.flatnonzero(ok)
        if len(rows) > MAX_FIT_ROWS:
            rows = np.sort(rng.choice(rows, MAX_FIT_ROWS, replace=False))
        inputs, err = inputs[rows], y[rows] - inputs[rows, -1]
        first = rng.permutation(len(err)) < len(err) // 2
        abs_e, sq_e = np.abs(err), err**2
        with _one_thread():
            abs_model = _regressor(abs_e[first], categorical, seed)
            abs_model.fit(inputs[first], abs_e[first])
            sq_model = _regressor(sq_e[first], categorical, seed).fit(inputs[first], sq_e[first])
        a_hat, s_hat, v_abs = cls._predict(abs_model, sq_model, inputs[~first])
        held_abs, held_sq = abs_e[~first], sq_e[~first]
        c_abs = float(np.mean((held_abs - a_hat) ** 2) / max(np.mean(v_abs), 1e-300))
        c_sq = float(np.mean((held_sq - s_hat) ** 2) / max(np.mean(s_hat**2), 1e-300))
        holdout = {
            "rows": int((~first).sum()),
            "mae": float(held_abs.mean()),
            "estimated_mae": float(a_hat.mean()),
            "rmse": float(np.sqrt(held_sq.mean())),
            "estimated_rmse": float(np.sqrt(s_hat.mean())),
            "c_abs": c_abs,
            "c_sq": c_sq,
        }
        return cls(abs_model, sq_model, c_abs, c_sq, holdout)

    @staticmethod
    def _predict(abs_model: Any, sq_model: Any, inputs: FloatArray) -> tuple[FloatArray, ...]:
        with _one_thread():
            a_hat = np.maximum(np.asarray(abs_model.predict(inputs), dtype=np.float64), 0.0)
            s_hat = np.maximum(np.asarray(sq_model.predict(inputs), dtype=np.float64), 0.0)
        return a_hat, s_hat, np.maximum(s_hat - a_hat**2, 0.0)

    def state(self, x: npt.ArrayLike, y_pred: npt.ArrayLike) -> DLEState:
        """The mergeable state of a window (rows without a prediction are skipped)."""
        inputs, ok = _inputs(x, y_pred)
        if not ok.any():
            return DLEState(skipped_rows=int((~ok).sum()))
        a_hat, s_hat, v_abs = self._predict(self.abs_model, self.sq_model, inputs[ok])
        return DLEState(
            rows=int(ok.sum()),
            abs_error=float(a_hat.sum()),
            sq_error=float(s_hat.sum()),
            abs_var=float(self.c_abs * v_abs.sum()),
            sq_var=float(self.c_sq * (s_hat**2).sum()),
            skipped_rows=int((~ok).sum()),
        )

    def estimate(self, state: DLEState, confidence: float = 0.95) -> dict[str, Any]:
        """The estimated MAE and RMSE of a window's state, with their intervals."""
        z = normal_quantile(confidence)
        metrics: dict[str, MetricValue] = {}
        if state.rows == 0:
            for name in ("mae", "rmse", "mse"):
                metrics[name] = metric_value(None, reason="no rows with a prediction")
        else:
            n = state.rows
            mae, mae_sd = state.abs_error / n, np.sqrt(state.abs_var) / n
            mse, mse_sd = state.sq_error / n, np.sqrt(state.sq_var) / n
            mse_lo, mse_hi = max(mse - z * mse_sd, 0.0), mse + z * mse_sd
            metrics["mae"] = metric_value(
                mae, max(mae - z * mae_sd, 0.0), mae + z * mae_sd, "dle-normal"
            )
            metrics["rmse"] = metric_value(
                float(np.sqrt(mse)), float(np.sqrt(mse_lo)), float(np.sqrt(mse_hi)), "dle-normal"
            )
            metrics["mse"] = metric_value(mse, mse_lo, mse_hi, "dle-normal")
        return {
            "task": "regression",
            "method": "dle",
            "rows": state.rows,
            "skipped_rows": state.skipped_rows,
            "confidence": float(confidence),
            "metrics": metrics,
        }
