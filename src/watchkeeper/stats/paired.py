"""Paired comparison of two models on the same labelled requests: is the challenger better?

Both models scored the same rows (the champion answered, the challenger ran in its shadow), so
the comparison is paired, which is far more sensitive than comparing two separate samples:

* :func:`mcnemar` compares error rates: only the rows where exactly one model is right count.
  ``b`` rows the champion got right and the challenger wrong, ``c`` the other way round; under
  "equally good", each such row is a fair coin. Exact binomial test while ``b + c < 25``, else
  the chi-square statistic with continuity correction, ``(|b − c| − 1)² / (b + c)``
  (McNemar 1947; Edwards 1948).
* :func:`paired_bootstrap` works for any metric (F1, ROC AUC, MAE, RMSE, accuracy): the rows are
  resampled with replacement, *the same rows for both models*, and the metric difference
  (challenger − champion) is recomputed on each resample; the percentile interval of those
  differences and the two-sided bootstrap p-value (twice the share of differences on the far
  side of zero) are the evidence (Efron & Tibshirani 1993, ch. 15–16).

``difference`` is always challenger − champion; ``higher_is_better`` says which sign is good.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 400)
>>> champion = np.where(rng.random(400) < 0.75, y, 1 - y)      # right 75 % of the time
>>> challenger = np.where(rng.random(400) < 0.90, y, 1 - y)    # right 90 % of the time
>>> t = mcnemar(champion == y, challenger == y)
>>> t.difference > 0 and t.p_value < 0.001
True
>>> b = paired_bootstrap("f1", y, champion, challenger, seed=0)
>>> b.ci_low > 0 and b.p_value < 0.01
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from watchkeeper.errors import InputError

Array = npt.NDArray[Any]
EXACT_BELOW = 25  # discordant pairs under which McNemar's exact binomial test is used


@dataclass(frozen=True)
class PairedTest:
    """The evidence of one paired comparison."""

    metric: str
    method: str
    n: int
    champion: float
    challenger: float
    difference: float  # challenger − champion
    ci_low: float | None
    ci_high: float | None
    p_value: float
    higher_is_better: bool
    detail: dict[str, Any]

    @property
    def challenger_better(self) -> bool:
        """The difference points the good way (say nothing about significance)."""
        return self.difference > 0 if self.higher_is_better else self.difference < 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "challenger_better": self.challenger_better}


def mcnemar(champion_correct: npt.ArrayLike, challenger_correct: npt.ArrayLike) -> PairedTest:
    """McNemar's test on two boolean arrays (row i right or wrong for each model); the
    metric compared is accuracy and its interval the Wald interval of the paired difference."""
    a = np.asarray(champion_correct, dtype=bool)
    c_ = np.asarray(challenger_correct, dtype=bool)
    _check_pair(a, c_)
    n = len(a)
    b = int(np.sum(a & ~c_))  # champion right, challenger wrong
    c = int(np.sum(~a & c_))  # challenger right, champion wrong
    if b + c == 0:
        p, method, statistic = 1.0, "mcnemar-exact", 0.0
    elif b + c < EXACT_BELOW:
        p = float(stats.binomtest(b, b + c, 0.5).pvalue)
        method, statistic = "mcnemar-exact", float(min(b, c))
    else:
        statistic = (abs(b - c) - 1) ** 2 / (b + c)
        p, method = float(stats.chi2.sf(statistic, 1)), "mcnemar-chi2"
    diff = (c - b) / n
    se = np.sqrt(max((b + c) / n - diff**2, 0.0) / n)
    z = float(stats.norm.ppf(0.975))
    return PairedTest(
        metric="accuracy",
        method=method,
        n=n,
        champion=float(a.mean()),
        challenger=float(c_.mean()),
        difference=float(diff),
        ci_low=float(diff - z * se),
        ci_high=float(diff + z * se),
        p_value=min(p, 1.0),
        higher_is_better=True,
        detail={"champion_only_right": b, "challenger_only_right": c, "statistic": statistic},
    )


def _accuracy(y: Array, p: Array) -> Array:
    return np.asarray(np.mean(y == p, axis=-1))


def _f1(y: Array, p: Array) -> Array:  # booleans: the positive class
    tp = np.sum(p & y, axis=-1)
    fp = np.sum(p & ~y, axis=-1)
    fn = np.sum(~p & y, axis=-1)
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _roc_auc(y: Array, s: Array) -> Array:  # y booleans: the positive class
    y2, s2 = np.atleast_2d(y), np.atleast_2d(s.astype(float))
    ranks = stats.rankdata(s2, axis=-1)  # ties get their mean rank
    n_pos = y2.sum(axis=-1)
    n_neg = y2.shape[-1] - n_pos
    u = np.sum(ranks * y2, axis=-1) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = u / (n_pos * n_neg)
    return np.asarray(auc if y.ndim > 1 else auc[0])


def _mae(y: Array, p: Array) -> Array:
    return np.asarray(np.mean(np.abs(y.astype(float) - p.astype(float)), axis=-1))


def _rmse(y: Array, p: Array) -> Array:
    return np.asarray(np.sqrt(np.mean((y.astype(float) - p.astype(float)) ** 2, axis=-1)))


# name -> (metric on arrays whose last axis is the rows, higher is better)
PAIRED_METRICS: dict[str, tuple[Callable[[Array, Array], Array], bool]] = {
    "accuracy": (_accuracy, True),
    "f1": (_f1, True),
    "roc_auc": (_roc_auc, True),
    "mae": (_mae, False),
    "rmse": (_rmse, False),
}


def resample_chunks(resamples: int, n: int, cells: int = 2_000_000) -> list[int]:
    """How many resamples of ``n`` rows to draw at a time so that one draw holds at most
    ``cells`` indices (at least one resample): drawn in turn from one generator, the chunks
    are the same indices as one draw of them all.

    >>> resample_chunks(1000, 10_000)
    [200, 200, 200, 200, 200]
    """
    step = max(1, min(resamples, cells // max(n, 1)))
    return [min(step, resamples - start) for start in range(0, resamples, step)]


def paired_bootstrap(
    metric: str,
    y_true: npt.ArrayLike,
    champion: npt.ArrayLike,
    challenger: npt.ArrayLike,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> PairedTest:
    """The paired bootstrap of ``metric`` (a key of :data:`PAIRED_METRICS`) on the same rows;
    ``champion``/``challenger`` are predictions, or positive-class scores for ``roc_auc``."""
    if metric not in PAIRED_METRICS:
        raise InputError(f"metric {metric!r}: not one of {sorted(PAIRED_METRICS)}")
    if resamples < 100:
        raise InputError(f"resamples={resamples}: at least 100")
    if not 0 < confidence < 1:
        raise InputError(f"confidence={confidence}: between 0 and 1")
    fn, higher = PAIRED_METRICS[metric]
    y, a, b = np.asarray(y_true), np.asarray(champion), np.asarray(challenger)
    _check_pair(a, b)
    _check_pair(y, a)
    if metric in ("f1", "roc_auc"):
        classes = np.unique(y)
        if len(classes) != 2:
            raise InputError(f"{metric}: needs labels of exactly two classes, got {classes}")
        positive = classes[-1]  # the larger: 1 of 0/1, True, the later string
        y = y == positive
        if metric == "f1":
            a, b = a == positive, b == positive
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    start = 0
    for size in resample_chunks(resamples, len(y)):  # bounded memory, the same draws
        rows = rng.integers(0, len(y), size=(size, len(y)))
        diffs[start : start + size] = fn(y[rows], b[rows]) - fn(y[rows], a[rows])
        start += size
    diffs = diffs[np.isfinite(diffs)]  # an AUC resample with one class has no value
    champion_value, challenger_value = float(fn(y, a)), float(fn(y, b))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    tail = min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0)))
    return PairedTest(
        metric=metric,
        method="paired-bootstrap",
        n=len(y),
        champion=champion_value,
        challenger=challenger_value,
        difference=challenger_value - champion_value,
        ci_low=float(low),
        ci_high=float(high),
        p_value=float(min(1.0, 2 * tail)),
        higher_is_better=higher,
        detail={"resamples": len(diffs), "confidence": confidence, "seed": seed},
    )


def _check_pair(a: Array, b: Array) -> None:
    if a.ndim != 1 or b.ndim != 1 or len(a) != len(b):
        raise InputError(f"paired arrays must be 1-D of one length, got {a.shape} and {b.shape}")
    if len(a) == 0:
        raise InputError("no rows to compare")
