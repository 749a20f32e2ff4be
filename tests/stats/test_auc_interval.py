"""The ROC AUC interval: DeLong's variance from the score histograms, checked against DeLong
computed from the raw scores (midranks, Sun & Xu 2014) and against a bootstrap of
scikit-learn's ``roc_auc_score`` on resampled rows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_auc_score

from watchkeeper.stats.classification import ClassificationAggregate

BINS = 1000


def _delong_reference(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """AUC and DeLong's variance from raw scores, by midranks (independent of the histograms)."""
    pos, neg = s[y == 1], s[y == 0]
    m, n = len(pos), len(neg)
    r_all = rankdata(np.concatenate([pos, neg]))
    r_pos, r_neg = rankdata(pos), rankdata(neg)
    v10 = (r_all[:m] - r_pos) / n  # a positive's share of negatives below it, ties 1/2
    v01 = 1.0 - (r_all[m:] - r_neg) / m  # a negative's share of positives above it
    auc = float(v10.mean())
    return auc, float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)


def _sample(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random(n) < 0.35).astype(int)
    raw = 1.0 / (1.0 + np.exp(-(rng.normal(0, 1, n) + shift * y)))
    # one distinct score per histogram bin (its centre): the binned AUC is the exact one
    s = (np.minimum((raw * BINS).astype(int), BINS - 1) + 0.5) / BINS
    return y, s


@pytest.mark.parametrize(("n", "shift", "seed"), [(60, 0.5, 1), (800, 1.0, 2), (5000, 2.0, 3)])
def test_the_interval_is_delongs_on_the_raw_scores(n: int, shift: float, seed: int) -> None:
    y, s = _sample(np.random.default_rng(seed), n, shift)
    m = ClassificationAggregate.from_arrays(y, s > 0.5, s, classes=[0, 1]).metrics(0.9)
    auc, var = _delong_reference(y, s)
    assert m["roc_auc"]["value"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m["roc_auc"]["value"] == pytest.approx(auc, abs=1e-12)
    half = norm.ppf(0.95) * np.sqrt(var)
    assert m["roc_auc"]["ci_method"] == "delong"
    assert m["roc_auc"]["ci_low"] == pytest.approx(max(auc - half, 0.0), abs=1e-9)
    assert m["roc_auc"]["ci_high"] == pytest.approx(min(auc + half, 1.0), abs=1e-9)


def test_the_interval_matches_a_bootstrap_of_scikit_learn() -> None:
    """The interval's standard error is the bootstrap's (resampled rows, sklearn's AUC)."""
    rng = np.random.default_rng(7)
    y, s = _sample(rng, 1500, 1.0)
    m = ClassificationAggregate.from_arrays(y, s > 0.5, s, classes=[0, 1]).metrics()
    assert m["roc_auc"]["ci_method"] == "delong"
    se = (m["roc_auc"]["ci_high"] - m["roc_auc"]["ci_low"]) / (2 * norm.ppf(0.975))
    draws = rng.integers(0, len(y), size=(2000, len(y)))
    boot = [roc_auc_score(y[i], s[i]) for i in draws]
    assert se == pytest.approx(np.std(boot, ddof=1), rel=0.1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    assert m["roc_auc"]["ci_low"] == pytest.approx(lo, abs=0.01)
    assert m["roc_auc"]["ci_high"] == pytest.approx(hi, abs=0.01)
