"""The paired comparison of champion and challenger, against scipy and scikit-learn on the same
data: McNemar's p-values against scipy's binomial and chi-square tests, every bootstrap
difference against scikit-learn's metric on the very same resampled rows."""

from __future__ import annotations

import doctest
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from watchkeeper.errors import InputError
from watchkeeper.stats import paired
from watchkeeper.stats.paired import PAIRED_METRICS, mcnemar, paired_bootstrap


def test_docstring_examples_run() -> None:
    result = doctest.testmod(paired, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 4 and result.failed == 0


def pairs(n: int, right_a: float, right_b: float, seed: int) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < right_a, y, 1 - y)
    b = np.where(rng.random(n) < right_b, y, 1 - y)
    return y, a, b


@pytest.mark.parametrize(("n", "right_a", "right_b"), [(30, 0.7, 0.8), (500, 0.8, 0.83)])
def test_mcnemar_against_scipy(n: int, right_a: float, right_b: float) -> None:
    y, a, b = pairs(n, right_a, right_b, seed=n)
    t = mcnemar(a == y, b == y)
    only_a = int(np.sum((a == y) & (b != y)))
    only_b = int(np.sum((a != y) & (b == y)))
    assert t.detail["champion_only_right"] == only_a and t.detail["challenger_only_right"] == only_b
    if only_a + only_b < 25:
        assert t.method == "mcnemar-exact"
        assert t.p_value == pytest.approx(stats.binomtest(only_a, only_a + only_b).pvalue)
    else:
        chi2 = (abs(only_a - only_b) - 1) ** 2 / (only_a + only_b)
        assert t.method == "mcnemar-chi2"
        assert t.p_value == pytest.approx(stats.chi2.sf(chi2, 1))
    assert t.champion == pytest.approx(skm.accuracy_score(y, a))
    assert t.challenger == pytest.approx(skm.accuracy_score(y, b))
    assert t.difference == pytest.approx(t.challenger - t.champion)
    assert t.ci_low is not None and t.ci_high is not None
    assert t.ci_low <= t.difference <= t.ci_high


def test_mcnemar_of_identical_models_finds_nothing() -> None:
    y, a, _ = pairs(200, 0.8, 0.8, seed=1)
    t = mcnemar(a == y, a == y)
    assert (t.p_value, t.difference, t.challenger_better) == (1.0, 0.0, False)


SKLEARN = {
    "accuracy": skm.accuracy_score,
    "f1": skm.f1_score,
    "roc_auc": skm.roc_auc_score,
    "mae": skm.mean_absolute_error,
    "rmse": lambda y, p: np.sqrt(skm.mean_squared_error(y, p)),
}


def data_for(metric: str, n: int, seed: int) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    if metric in ("mae", "rmse"):
        y = rng.normal(10, 3, n)
        return y, y + rng.normal(0, 2.0, n), y + rng.normal(0, 1.5, n)
    y = rng.integers(0, 2, n)
    if metric == "roc_auc":
        return y, y * 0.6 + rng.random(n), y * 0.9 + rng.random(n)
    return pairs(n, 0.75, 0.85, seed)


@pytest.mark.parametrize("metric", sorted(PAIRED_METRICS))
def test_every_bootstrap_difference_equals_scikit_learn_on_the_same_rows(metric: str) -> None:
    y, a, b = data_for(metric, 300, seed=3)
    t = paired_bootstrap(metric, y, a, b, resamples=200, seed=7)
    sk = SKLEARN[metric]
    assert t.champion == pytest.approx(sk(y, a)) and t.challenger == pytest.approx(sk(y, b))
    # the oracle: the same resampled rows, scored one by one with scikit-learn
    index = np.random.default_rng(7).integers(0, len(y), size=(200, len(y)))
    expected = np.array([sk(y[i], b[i]) - sk(y[i], a[i]) for i in index])
    low, high = np.quantile(expected, [0.025, 0.975])
    assert (t.ci_low, t.ci_high) == (pytest.approx(low), pytest.approx(high))
    tail = min(np.mean(expected <= 0), np.mean(expected >= 0))
    assert t.p_value == pytest.approx(min(1.0, 2 * tail))
    assert t.challenger_better and t.p_value < 0.05  # the challenger is built better


def test_a_bootstrap_of_one_model_against_itself_finds_nothing() -> None:
    y, a, _ = pairs(300, 0.8, 0.8, seed=2)
    t = paired_bootstrap("f1", y, a, a, resamples=200)
    assert (t.difference, t.ci_low, t.ci_high, t.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_string_labels_take_the_later_one_as_positive() -> None:
    y, a, b = pairs(300, 0.75, 0.9, seed=4)
    names = np.array(["no", "yes"])
    t = paired_bootstrap("f1", names[y], names[a], names[b], resamples=100)
    assert t.challenger == pytest.approx(skm.f1_score(names[y], names[b], pos_label="yes"))


def test_the_interval_covers_the_true_difference_about_as_often_as_it_says() -> None:
    """Coverage: 200 independent samples from one population whose accuracy difference is
    known; the 90 % paired bootstrap interval should hold it about 180 times."""
    n, runs, truth = 400, 200, 0.85 - 0.75
    hits = 0
    for seed in range(runs):
        y, a, b = pairs(n, 0.75, 0.85, seed=1000 + seed)
        t = paired_bootstrap("accuracy", y, a, b, resamples=300, confidence=0.9, seed=seed)
        assert t.ci_low is not None and t.ci_high is not None
        hits += t.ci_low <= truth <= t.ci_high
    assert 0.84 <= hits / runs <= 0.96, hits


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: paired_bootstrap("r2", [1], [1], [1]), "metric 'r2': not one of"),
        (lambda: paired_bootstrap("f1", [1, 1], [1, 0], [1, 1]), "exactly two classes"),
        (lambda: paired_bootstrap("mae", [1.0], [1.0], [1.0, 2.0]), "one length"),
        (lambda: paired_bootstrap("mae", [1.0], [1.0], [1.0], resamples=5), "resamples=5"),
        (lambda: mcnemar([], []), "no rows"),
    ],
)
def test_bad_input_is_a_typed_error_naming_the_problem(call: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        call()


@pytest.mark.parametrize(
    ("resamples", "n"), [(2000, 10), (2000, 30_000), (1000, 3_000_001), (7, 5)]
)
def test_resamples_drawn_in_bounded_chunks_are_the_draws_of_one_call(
    resamples: int, n: int
) -> None:
    """The bootstraps draw their resample indices a bounded chunk at a time (memory): the
    chunks cover every resample, stay under the bound, and give the very indices one call
    would (so results did not change when the draw was split)."""
    from watchkeeper.stats.paired import resample_chunks

    chunks = resample_chunks(resamples, n)
    assert sum(chunks) == resamples and all(c >= 1 for c in chunks)
    assert all(c * n <= 2_000_000 for c in chunks) or chunks == [1] * resamples
    if resamples * n <= 20_000_000:
        whole = np.random.default_rng(5).integers(0, n, size=(resamples, n))
        rng = np.random.default_rng(5)
        parts = np.concatenate([rng.integers(0, n, size=(c, n)) for c in chunks])
        np.testing.assert_array_equal(parts, whole)
