"""DLE: on a regression with known, input-dependent noise, the estimated MAE and RMSE recover
the noise level, and their intervals hold the realized values (scikit-learn's) at the nominal
rate over many windows of a covariate shift."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error

from watchkeeper.errors import InputError
from watchkeeper.estimation import DLE, DLEState


def _data(rng: np.random.Generator, n: int, low: float = 0.0) -> tuple[np.ndarray, ...]:
    """y = sin(3 x0) + noise of sd 0.2 + x0 (x1 is irrelevant); the model predicts sin(3 x0)."""
    x = np.column_stack([rng.uniform(low, 1.0, n), rng.normal(size=n)])
    pred = np.sin(3 * x[:, 0])
    sd = 0.2 + x[:, 0]
    return x, pred + rng.normal(0.0, sd, n), pred, sd


def test_dle_recovers_the_noise_level_under_covariate_shift() -> None:
    rng = np.random.default_rng(0)
    x, y, pred, _ = _data(rng, 20_000)
    dle = DLE.fit(x, y, pred)
    x_new, _, pred_new, sd = _data(rng, 20_000, low=0.6)  # the noisy half of the range
    m = dle.estimate(dle.state(x_new, pred_new))["metrics"]
    assert m["rmse"]["value"] == pytest.approx(np.sqrt(np.mean(sd**2)), rel=0.03)
    assert m["mae"]["value"] == pytest.approx(np.sqrt(2 / np.pi) * np.mean(sd), rel=0.03)
    assert dle.holdout["rows"] == 10_000


def test_states_merge_to_the_state_of_the_union() -> None:
    rng = np.random.default_rng(1)
    x, y, pred, _ = _data(rng, 2000)
    dle = DLE.fit(x, y, pred)
    a, _, pa_, _ = _data(rng, 300)
    b, _, pb, _ = _data(rng, 200, low=0.5)
    merged = dle.state(a, pa_).merge(dle.state(b, pb))
    whole = dle.state(np.vstack([a, b]), np.concatenate([pa_, pb]))
    for field in ("rows", "abs_error", "sq_error", "abs_var", "sq_var"):
        assert getattr(merged, field) == pytest.approx(getattr(whole, field), rel=1e-12)
    assert DLEState.from_dict(merged.to_dict()) == merged


def test_dle_rejects_too_few_rows_and_skips_missing_predictions() -> None:
    rng = np.random.default_rng(2)
    x, y, pred, _ = _data(rng, 30)
    with pytest.raises(InputError, match="at least 40"):
        DLE.fit(x, y, pred)
    x, y, pred, _ = _data(rng, 500)
    dle = DLE.fit(x, y, pred)
    pred[:5] = np.nan
    state = dle.state(x, pred)
    assert (state.rows, state.skipped_rows) == (495, 5)


@pytest.mark.slow
def test_intervals_cover_the_realized_errors_at_their_nominal_rate() -> None:
    rng = np.random.default_rng(3)
    x, y, pred, _ = _data(rng, 20_000)
    dle = DLE.fit(x, y, pred)
    windows, hits = 200, {"mae": 0, "rmse": 0}
    for _ in range(windows):
        xw, yw, pw, _ = _data(rng, 500, low=0.3)
        m = dle.estimate(dle.state(xw, pw), confidence=0.9)["metrics"]
        realized = {
            "mae": mean_absolute_error(yw, pw),
            "rmse": np.sqrt(mean_squared_error(yw, pw)),
        }
        for name, value in realized.items():
            hits[name] += m[name]["ci_low"] <= value <= m[name]["ci_high"]
    print({name: count / windows for name, count in hits.items()})
    bound = 3 * np.sqrt(0.9 * 0.1 / windows)
    for name, count in hits.items():
        assert abs(count / windows - 0.9) <= bound, (name, count / windows)
