"""A window's performance points carry their confidence intervals in ``detail``: Wilson for
proportions (computed here from the formula), bootstraps checked against scikit-learn's metrics
on resampled rows, DeLong for ROC AUC; folding the labels in deliveries gives the points of
folding them at once (the aggregates merge exactly)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import (
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)

from watchkeeper.evaluation.performance import performance_points
from watchkeeper.stats.labelled import fold_labelled

Z = norm.ppf(0.975)
KEYS = {"low", "high", "level", "method", "n", "reason"}


def _wilson(k: float, n: float) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * np.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


def _binary(seed: int, n: int = 1200) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.4
    score = np.clip(np.where(truth, 0.65, 0.35) + rng.normal(0, 0.2, n), 0, 1)
    has_score = rng.random(n) < 0.7
    return np.where(truth, "yes", "no"), np.where(score > 0.5, "yes", "no"), score, has_score


def _items(y: np.ndarray, p: np.ndarray, s: np.ndarray, has: np.ndarray) -> list[tuple]:
    return [(str(p[i]), str(y[i]), float(s[i]) if has[i] else None) for i in range(len(y))]


def _fold(items: list[tuple], parts: int) -> dict:
    entry = None
    for chunk in np.array_split(np.arange(len(items)), parts):
        entry = fold_labelled(
            "classification", entry, [items[i] for i in chunk], classes=["no", "yes"]
        )
    assert entry is not None
    return entry


def test_classification_points_carry_their_intervals() -> None:
    y, p, s, has = _binary(3)
    points = performance_points(_fold(_items(y, p, s, has), 1))
    assert set(points) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    for value, detail in points.values():
        assert set(detail) == KEYS and detail["level"] == 0.95
        assert detail["low"] <= value <= detail["high"]
    n = len(y)
    tp = float(((y == "yes") & (p == "yes")).sum())
    for name, k, trials in [
        ("accuracy", (y == p).sum(), n),
        ("precision", tp, (p == "yes").sum()),
        ("recall", tp, (y == "yes").sum()),
    ]:
        value, detail = points[name]
        assert value == pytest.approx(k / trials, abs=1e-12)
        assert detail["method"] == "wilson" and detail["n"] == n
        assert (detail["low"], detail["high"]) == pytest.approx(_wilson(k, trials), abs=1e-12)

    # F1: a bootstrap; here resampled rows and scikit-learn's f1_score
    value, detail = points["f1"]
    assert detail["method"] == "bootstrap" and value == pytest.approx(
        f1_score(y, p, pos_label="yes"), abs=1e-12
    )
    rng = np.random.default_rng(0)
    boot = [f1_score(y[i], p[i], pos_label="yes") for i in rng.integers(0, n, (1000, n))]
    assert (detail["low"], detail["high"]) == pytest.approx(
        tuple(np.quantile(boot, [0.025, 0.975])), abs=0.01
    )
    # ROC AUC: over the predictions that carried a score (DeLong: tests/stats/test_auc_interval)
    value, detail = points["roc_auc"]
    assert detail["method"] == "delong" and detail["n"] == int(has.sum())


def test_labels_folded_in_deliveries_give_the_points_of_all_at_once() -> None:
    """profile(a) ⊕ profile(b) ⊕ profile(c) = profile(a ∪ b ∪ c): values and intervals."""
    items = _items(*_binary(4))
    assert performance_points(_fold(items, 5)) == performance_points(_fold(items, 1))
    rng = np.random.default_rng(1)
    target = rng.normal(10, 3, 900)
    pred = target + rng.normal(0.5, 1.5, 900)
    reg = [(str(pr), str(t), None) for pr, t in zip(pred, target, strict=True)]
    parts = None
    for chunk in np.array_split(np.arange(900), 4):
        parts = fold_labelled("regression", parts, [reg[i] for i in chunk])
    whole = fold_labelled("regression", None, reg)
    assert parts is not None
    for (v1, d1), (v2, d2) in zip(
        performance_points(parts).values(), performance_points(whole).values(), strict=True
    ):
        assert v1 == pytest.approx(v2, rel=1e-12)
        assert (d1["low"], d1["high"]) == pytest.approx((d2["low"], d2["high"]), rel=1e-9)
        assert d1["method"] == d2["method"] and d1["n"] == d2["n"] == 900


def test_regression_intervals_agree_with_a_bootstrap_of_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    target = rng.normal(50, 10, n)
    pred = target + rng.normal(1.0, 4.0, n)
    items = [(str(pr), str(t), None) for pr, t in zip(pred, target, strict=True)]
    points = performance_points(fold_labelled("regression", None, items))
    oracles = {
        "mae": mean_absolute_error,
        "rmse": lambda a, b: np.sqrt(mean_squared_error(a, b)),
        "r2": r2_score,
    }
    draws = rng.integers(0, n, (1000, n))
    for name, metric in oracles.items():
        value, detail = points[name]
        assert value == pytest.approx(metric(target, pred), rel=1e-9)
        assert detail["n"] == n and detail["method"] in ("normal", "delta")
        boot = np.array([metric(target[i], pred[i]) for i in draws])
        lo, hi = np.quantile(boot, [0.025, 0.975])
        width = hi - lo
        assert detail["high"] - detail["low"] == pytest.approx(width, rel=0.15), name
        assert detail["low"] == pytest.approx(lo, abs=0.15 * width), name
