"""CBPE: the calibration against scikit-learn, the estimate against the per-row expectation
(computed with scikit-learn's weighted metrics), the merge, and the intervals' coverage."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    multilabel_confusion_matrix,
    precision_score,
    recall_score,
    roc_auc_score,
)

from watchkeeper.errors import InputError
from watchkeeper.estimation import CBPE, Calibrator, CBPEState
from watchkeeper.estimation.calibration import brier, ece


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _binary(
    rng: np.random.Generator, n: int, shift: float = 0.0, over: float = 1.5
) -> tuple[np.ndarray, ...]:
    """True P(y=1|x) = sigmoid(2x); the model's score sigmoid(2 over x) is over-confident."""
    x = rng.normal(shift, 1.0, n)
    y = (rng.uniform(size=n) < _sigmoid(2 * x)).astype(int)
    s = _sigmoid(2 * over * x)
    return y, s, (s > 0.5).astype(int)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _multiclass(
    rng: np.random.Generator, n: int, shift: float = 0.0, over: float = 4 / 3
) -> tuple[np.ndarray, ...]:
    x = rng.normal(shift, 1.0, (n, 2))
    logits = np.column_stack([x[:, 0], x[:, 1], -x[:, 0] - x[:, 1]])
    truth = _softmax(1.5 * logits)
    y = (rng.uniform(size=(n, 1)) > np.cumsum(truth, 1)).sum(1)
    s = _softmax(1.5 * over * logits)
    return y, s, s.argmax(1)


# ------------------------------------------------------------------------------ calibration


def test_the_isotonic_maps_are_scikit_learns_predictions() -> None:
    rng = np.random.default_rng(1)
    y, s, _ = _binary(rng, 3000)
    cal = Calibrator.fit(s, y, n_classes=2)
    assert cal.method == "isotonic" and cal.quality["needed"]
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(s, y)
    new = np.concatenate([rng.uniform(size=500), [-0.1, 0.0, 1.0, 1.1]])
    np.testing.assert_allclose(cal.transform(new)[:, 1], iso.predict(new), atol=1e-12)
    back = Calibrator.from_dict(cal.to_dict())
    np.testing.assert_array_equal(back.transform(new), cal.transform(new))


def test_calibration_quality_brier_matches_sklearn_and_ece_falls() -> None:
    rng = np.random.default_rng(2)
    y, s, _ = _binary(rng, 4000)
    cal = Calibrator.fit(s, y, n_classes=2)
    q = cal.quality
    assert q["brier_before"] == pytest.approx(brier_score_loss(y, s))
    assert q["brier_after"] < q["brier_before"] and q["ece_after"] < q["ece_before"]
    # ECE by hand: 10 equal-width bins, |mean(y) - mean(s)| weighted by the bin's share
    b = np.minimum((s * 10).astype(int), 9)
    by_hand = sum(abs(y[b == i].mean() - s[b == i].mean()) * (b == i).mean() for i in set(b))
    assert ece(np.column_stack([1 - s, s]), y) == pytest.approx(by_hand)


def test_calibrated_scores_are_left_as_they_are() -> None:
    rng = np.random.default_rng(3)
    s = rng.uniform(size=4000)
    y = (rng.uniform(size=4000) < s).astype(int)
    cal = Calibrator.fit(s, y, n_classes=2)
    assert cal.method == "none" and not cal.quality["needed"]
    np.testing.assert_array_equal(cal.transform(s)[:, 1], s)


def test_multiclass_calibration_rows_sum_to_one_and_brier_is_the_multiclass_one() -> None:
    rng = np.random.default_rng(4)
    y, s, _ = _multiclass(rng, 3000)
    cal = Calibrator.fit(s, y, n_classes=3)
    p = cal.transform(s)
    np.testing.assert_allclose(p.sum(1), 1.0)
    onehot = np.eye(3)[y]
    assert brier(s, y) == pytest.approx(((s - onehot) ** 2).sum(1).mean())


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_bootstrap_refits_apply_as_their_own_maps(task: str) -> None:
    """The refits applied in one search (on the union of their breakpoints) equal each refit's
    maps applied alone, outside the fitted range included; they round-trip through to_dict."""
    rng = np.random.default_rng(5)
    y, s, _ = (_binary if task == "binary" else _multiclass)(rng, 3_000, over=3.0)
    cal = Calibrator.fit(s, y, n_classes=2 if task == "binary" else 3)
    assert cal.method == "isotonic" and len(cal.bootstrap) > 1
    raw = np.atleast_2d(s.T).T if task == "multiclass" else np.column_stack([1 - s, s])
    k = raw.shape[1]
    raw = np.vstack([raw, np.eye(k)[::-1], np.full((1, k), 1 / k)])
    each = np.array([Calibrator(k, "isotonic", maps).transform(raw) for maps in cal.bootstrap])
    np.testing.assert_allclose(cal.transform_bootstrap(raw), each, atol=1e-12)
    again = Calibrator.from_dict(cal.to_dict())
    np.testing.assert_allclose(again.transform_bootstrap(raw), each, atol=1e-12)


def test_calibration_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="at least 20"):
        Calibrator.fit(np.array([0.2, 0.8]), np.array([0, 1]), n_classes=2)
    with pytest.raises(InputError, match="score matrix"):
        Calibrator.fit(np.zeros((30, 2)), np.zeros(30), n_classes=3)


# ------------------------------------------------------------ the estimate is the expectation


def _weighted(y_pred: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each row repeated once per class k, with true label k and weight p_k: scikit-learn's
    weighted metrics on these rows are the metrics of the expected confusion matrix."""
    n, k = probs.shape
    return np.tile(np.arange(k), n), np.repeat(y_pred, k), probs.ravel()


def _on_grid(s: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores moved to a third of the way into their bin, so that each bin holds one distinct
    score (multiclass: the first two columns; the third, their complement, lands a third of
    the way into its bin too; rows where it would be negative are dropped)."""
    if s.ndim == 1:
        return (np.floor(s * bins) + 1 / 3) / bins, np.ones(len(s), dtype=bool)
    g = (np.floor(s[:, :2] * bins) + 1 / 3) / bins
    rest = (np.round((1.0 - g.sum(1)) * bins - 1 / 3) + 1 / 3) / bins  # one float per bin
    g = np.column_stack([g, rest])
    ok = g[:, 2] >= 0
    return g[ok], ok


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_estimated_metrics_equal_sklearn_on_the_expected_labels(task: str) -> None:
    rng = np.random.default_rng(5)
    make = _binary if task == "binary" else _multiclass
    y, s, _ = make(rng, 5000)
    bins = 200
    grid, ok = _on_grid(s, bins)
    est = CBPE.fit(y[ok], grid, bins=bins)
    _, s_new, pred = make(rng, 2000, shift=0.5)
    s_new, ok = _on_grid(s_new, bins)
    pred = pred[ok]
    out = est.estimate(est.state(s_new, pred))
    m = out["metrics"]
    probs = est.calibrator.transform(s_new)
    k = probs.shape[1]
    direct = np.array([[probs[pred == j, c].sum() for j in range(k)] for c in range(k)])
    np.testing.assert_allclose(out["expected_confusion_matrix"], direct, rtol=1e-12)
    yt, yp, w = _weighted(pred, probs)
    avg = "binary" if task == "binary" else "macro"
    assert m["accuracy"]["value"] == pytest.approx(accuracy_score(yt, yp, sample_weight=w))
    for name, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        expected = fn(yt, yp, sample_weight=w, average=avg, zero_division=0)
        assert m[name]["value"] == pytest.approx(expected), name
    mcm = multilabel_confusion_matrix(yt, yp, sample_weight=w)
    spec = mcm[:, 0, 0] / (mcm[:, 0, 0] + mcm[:, 0, 1])
    assert m["specificity"]["value"] == pytest.approx(spec[1] if k == 2 else spec.mean())
    # ROC AUC: per class, each row a positive of weight p_k and a negative of weight 1 - p_k,
    # ranked on its raw score
    raw = np.column_stack([1 - s_new, s_new]) if k == 2 else s_new
    aucs = []
    for c in [1] if k == 2 else range(k):
        labels = np.concatenate([np.ones(len(pred)), np.zeros(len(pred))])
        weights = np.concatenate([probs[:, c], 1 - probs[:, c]])
        aucs.append(roc_auc_score(labels, np.tile(raw[:, c], 2), sample_weight=weights))
    assert m["roc_auc"]["value"] == pytest.approx(np.mean(aucs), abs=1e-12)


def test_states_merge_to_the_state_of_the_union() -> None:
    rng = np.random.default_rng(6)
    y, s, _ = _multiclass(rng, 3000)
    est = CBPE.fit(y, s)
    _, a, pa_ = _multiclass(rng, 700)
    _, b, pb = _multiclass(rng, 400, shift=1.0)
    merged = est.state(a, pa_).merge(est.state(b, pb))
    whole = est.state(np.vstack([a, b]), np.concatenate([pa_, pb]))
    for field in ("predicted", "s1", "s2", "hist_n", "hist_p", "hist_pp"):
        np.testing.assert_allclose(getattr(merged, field), getattr(whole, field), rtol=1e-12)
    again = CBPEState.from_dict(merged.to_dict())
    assert est.estimate(again) == est.estimate(merged)
    restored = CBPE.from_dict(est.to_dict())
    assert restored.estimate(restored.state(a, pa_)) == est.estimate(est.state(a, pa_))


def test_rows_without_a_score_or_with_an_unknown_prediction_are_skipped() -> None:
    rng = np.random.default_rng(7)
    y, s, pred = _binary(rng, 1000)
    est = CBPE.fit(y.astype(str), s)
    s2, p2 = s[:10].copy(), pred[:10].astype(str).astype(object)
    s2[0], p2[1], p2[2] = np.nan, "7", None
    state = est.state(s2, p2)
    assert state.rows == 7 and state.skipped_rows == 3
    with pytest.raises(InputError, match="at least 2 classes"):
        CBPE.fit(np.zeros(50), rng.uniform(size=50))


# ------------------------------------------------------------------ the intervals' coverage


@pytest.mark.slow
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_intervals_cover_the_realized_metrics_at_their_nominal_rate(task: str) -> None:
    """Covariate shift only (P(y|x) unchanged), over-confident scores calibrated on the
    reference: 90 % intervals hold the realized metric (scikit-learn on the drawn labels) in
    90 % of 200 windows, within three binomial standard errors. The multiclass ROC AUC's
    interval is conservative by construction (docs/estimation.md): it covers at least 90 %."""
    rng = np.random.default_rng(8)
    make = _binary if task == "binary" else _multiclass
    y, s, _ = make(rng, 40_000)
    est = CBPE.fit(y, s, bins=200)
    windows, hits = 200, dict.fromkeys(("accuracy", "precision", "recall", "f1", "roc_auc"), 0)
    avg = "binary" if task == "binary" else "macro"
    for _ in range(windows):
        y_w, s_w, p_w = make(rng, 500, shift=0.6)
        m = est.estimate(est.state(s_w, p_w), confidence=0.9)["metrics"]
        realized = {
            "accuracy": accuracy_score(y_w, p_w),
            "precision": precision_score(y_w, p_w, average=avg, zero_division=0),
            "recall": recall_score(y_w, p_w, average=avg, zero_division=0),
            "f1": f1_score(y_w, p_w, average=avg, zero_division=0),
            "roc_auc": roc_auc_score(y_w, s_w, multi_class="ovr"),
        }
        for name, value in realized.items():
            hits[name] += m[name]["ci_low"] <= value <= m[name]["ci_high"]
    print(task, {name: count / windows for name, count in hits.items()})
    bound = 3 * np.sqrt(0.9 * 0.1 / windows)
    for name, count in hits.items():
        if task == "multiclass" and name == "roc_auc":
            assert count / windows >= 0.9 - bound, (name, count / windows)
        else:
            assert abs(count / windows - 0.9) <= bound, (name, count / windows)


@pytest.mark.slow
def test_intervals_carry_the_calibrations_error_from_a_small_reference() -> None:
    """The calibration fitted on a reference as small as the window errs as much as the
    window's draw: each of 150 trials draws a fresh 1,500-row reference (scores three times as
    confident as the truth, so calibration is kept) and a 1,500-row window of the same population; the 95 % interval
    must hold the realized metric in 95 % of the trials, within three binomial standard
    errors. Trials are independent (a fresh calibration each), unlike windows estimated with
    one calibration, whose misses come together. Without the calibration's error the intervals
    held accuracy and F1 in about 85 % of them. (Multiclass is left out: there the small
    reference's isotonic maps also bias the estimate, which no interval holds;
    docs/estimation.md.)"""
    rng = np.random.default_rng(14)
    trials, names = 150, ("accuracy", "precision", "recall", "f1", "roc_auc")
    hits = dict.fromkeys(names, 0)
    for _ in range(trials):
        y, s, _ = _binary(rng, 1_500, over=3.0)
        est = CBPE.fit(y, s, bins=200)
        assert est.calibrator.method == "isotonic"
        y_w, s_w, p_w = _binary(rng, 1_500, over=3.0)
        m = est.estimate(est.state(s_w, p_w))["metrics"]
        realized = {
            "accuracy": accuracy_score(y_w, p_w),
            "precision": precision_score(y_w, p_w, zero_division=0),
            "recall": recall_score(y_w, p_w, zero_division=0),
            "f1": f1_score(y_w, p_w, zero_division=0),
            "roc_auc": roc_auc_score(y_w, s_w),
        }
        for name, value in realized.items():
            hits[name] += m[name]["ci_low"] <= value <= m[name]["ci_high"]
    print({name: count / trials for name, count in hits.items()})
    bound = 3 * np.sqrt(0.95 * 0.05 / trials)
    for name, count in hits.items():
        assert abs(count / trials - 0.95) <= bound, (name, count / trials)
