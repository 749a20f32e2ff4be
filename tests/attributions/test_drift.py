"""Attribution drift: flagged when the model's reliance moves, at the stated false-alarm rate
when nothing changes; the surrogate's reported fidelity holds on fresh data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import accuracy_score, r2_score

from watchkeeper.attributions import fit_attributions, window_attributions
from watchkeeper.schema import infer_schema

pytest.importorskip("shap", reason="the explain extra: pip install -e '.[dev]'")

F = 4


def _draw(rng: np.random.Generator, n: int, spread: float = 1.0) -> np.ndarray:
    x = rng.normal(size=(n, F))
    x[:, 1] *= spread
    return x


def _target(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return 2 * x[:, 0] + x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + rng.normal(0, 0.3, len(x))


def _table(x: np.ndarray) -> pa.Table:
    return pa.table({f"f{j}": x[:, j] for j in range(F)})


@pytest.fixture(scope="module")
def model() -> HistGradientBoostingRegressor:
    rng = np.random.default_rng(99)
    x = _draw(rng, 3000)
    return HistGradientBoostingRegressor(max_iter=20, max_leaf_nodes=8).fit(x, _target(x, rng))


def test_attribution_drift_keeps_the_stated_false_alarm_rate_under_no_change(model) -> None:
    trials, alpha = 240, 0.05
    first = _table(_draw(np.random.default_rng(6), 400))
    fitted = fit_attributions(first, infer_schema(first), model, None, seed=0)
    assert fitted.explainer is not None
    alarms = 0
    for trial in range(trials):
        rng = np.random.default_rng((7, trial))
        # a fresh reference each trial (its sampling error is part of the null), explained by
        # the same explainer (building one costs more than the whole decision)
        values = fitted.explainer.explain(_draw(rng, 400)).values
        fit = dataclasses.replace(fitted, values=values, seed=trial, nulls={})
        result = window_attributions(fit, _table(_draw(rng, 300)), alpha)
        alarms += result.drifted
    # two-sided binomial test of the alarm count against the stated rate
    p = stats.binomtest(alarms, trials, alpha).pvalue
    print(f"{alarms} alarms in {trials} windows at alpha {alpha}")
    assert p > 0.01, (
        f"{alarms} alarms in {trials} windows without change (expected {trials * alpha})"
    )


def test_attribution_drift_is_flagged_when_the_models_reliance_moves(model) -> None:
    flagged, first = 0, 0
    for trial in range(40):
        rng = np.random.default_rng((8, trial))
        ref = _table(_draw(rng, 400))
        fit = fit_attributions(ref, infer_schema(ref), model, None, seed=trial)
        # f1 spreads twice as wide: the model now leans on it much more
        result = window_attributions(fit, _table(_draw(rng, 300, spread=2.0)), 0.01)
        flagged += result.drifted
        first += result.features[0].feature == "f1"
        assert result.features[0].current_share > result.features[0].reference_share
    assert flagged >= 39 and first >= 39


def test_the_surrogates_reported_fidelity_matches_a_held_out_check(model) -> None:
    rng = np.random.default_rng(3)
    x = _draw(rng, 4000)
    ref = _table(x).append_column("prediction", pa.array(model.predict(x)))
    fit = fit_attributions(ref, infer_schema(ref), None, "prediction", seed=0)
    assert fit.source == "surrogate" and fit.approximate
    assert fit.fidelity is not None and fit.fidelity["metric"] == "r2"
    assert fit.fidelity["held_out_rows"] == 1000
    surrogate = fit.explainer.model  # type: ignore[union-attr]
    fresh = _draw(rng, 20_000)
    check = r2_score(model.predict(fresh), surrogate.predict(fresh))
    assert abs(check - fit.fidelity["value"]) < 0.02, (check, fit.fidelity)


def test_a_label_surrogates_agreement_matches_a_held_out_check(model) -> None:
    rng = np.random.default_rng(4)
    x = _draw(rng, 4000)
    labels = np.where(model.predict(x) > 0, "yes", "no")
    ref = _table(x).append_column("prediction", pa.array(labels))
    fit = fit_attributions(ref, infer_schema(ref), None, "prediction", seed=0)
    assert fit.fidelity is not None and fit.fidelity["metric"] == "agreement"
    surrogate = fit.explainer.model  # type: ignore[union-attr]
    fresh = _draw(rng, 20_000)
    check = accuracy_score(
        np.where(model.predict(fresh) > 0, "yes", "no"), surrogate.predict(fresh)
    )
    # the reported agreement is a proportion of 1,000 held-out rows: within 3 standard errors
    se = np.sqrt(check * (1 - check) / fit.fidelity["held_out_rows"])
    assert abs(check - fit.fidelity["value"]) < 3 * se + 1e-3, (check, fit.fidelity)
