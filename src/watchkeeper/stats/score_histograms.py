"""ROC AUC and average precision from binned score histograms, with their error bounds.

Scores are turned into an (n, K) class probability matrix (:func:`class_probabilities`) and
binned, per class, on ``score_bins`` fixed bins over [0, 1], split into rows whose true class
is that class ("positives") and the rest (one-vs-rest): :func:`score_histogram`. The
histograms are mergeable counts; the ranking metrics are computed from them alone.

Binned scores
-------------
Pairs of a positive and a negative row in different bins are ordered exactly; pairs sharing a
bin count as half (a tie), so ``|binned AUC - exact AUC| <= 0.5 * (pairs sharing a bin) /
(all pairs)``, returned as ``roc_auc_error_bound``. For average precision each bin is one
threshold; the exact value of a bin's contribution lies between the "all its negatives first"
and "all its positives first" orderings, and the sum of the per-bin worst cases is returned as
``pr_auc_error_bound`` (multiclass: bounds are averaged like the values). When each bin holds
at most one distinct score, both binned values equal scikit-learn's exactly.

Intervals: ROC AUC -- ``"delong"``: DeLong et al. (1988)'s variance from the placement values
of the rows, which the histograms hold exactly for binned scores (:func:`delong_variance`;
multiclass macro: per-class variances, classes treated as independent); average precision of
one class -- ``"wilson"``, as a proportion of its positives (the binomial interval of Boyd et
al. 2013); multiclass macro average precision -- ``"normal"`` (per-class binomial variances,
classes treated as independent).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import digamma

from watchkeeper.errors import InputError
from watchkeeper.stats.intervals import (
    MetricValue,
    metric_value,
    normal_quantile,
    safe_div,
    wilson_interval,
)

__all__ = [
    "ap_from_hist",
    "auc_from_hist",
    "class_probabilities",
    "delong_variance",
    "ranking_metrics",
    "score_histogram",
]

_PROB_SUM_TOL = 1e-5

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def class_probabilities(s: FloatArray, classes: list[str], pos: str | None) -> FloatArray:
    """Scores as an (m, K) probability matrix in class order.

    1-D scores are P(``pos``, else the last class) of a binary task; 2-D scores must have
    one column per class and rows summing to 1.
    """
    k = len(classes)
    if s.shape[0] == 0:
        return np.zeros((0, k))
    if s.ndim == 1:
        if k > 2:
            raise InputError(
                f"1-D scores are for binary tasks; there are {k} classes "
                "(pass an (n, K) probability matrix)"
            )
        if k == 1 and pos is None:
            raise InputError(
                "1-D scores with a single class seen are ambiguous; "
                "pass classes= (both classes) or pos_label="
            )
        j = classes.index(pos) if pos is not None else k - 1
        probs = np.empty((len(s), k))
        probs[:, j] = s
        if k == 2:
            probs[:, 1 - j] = 1.0 - s
        return probs
    if s.shape[1] != k:
        raise InputError(
            f"scores has {s.shape[1]} columns but there are {k} classes "
            f"{classes}; pass classes= so every batch has all columns"
        )
    if (np.abs(s.sum(1) - 1.0) > _PROB_SUM_TOL).any():
        bad = int(np.argmax(np.abs(s.sum(1) - 1.0)))
        raise InputError(
            f"scores rows must sum to 1 (class probabilities); a row sums to {s[bad].sum():.6g}"
        )
    return s


def score_histogram(probs: FloatArray, true_idx: npt.NDArray[np.intp], score_bins: int) -> IntArray:
    """The (K, 2, score_bins) one-vs-rest histograms [negatives, positives] of each class."""
    k = probs.shape[1]
    bins = np.minimum((probs * score_bins).astype(np.int64), score_bins - 1)
    is_pos = true_idx[:, None] == np.arange(k)[None, :]
    flat = (np.arange(k)[None, :] * 2 + is_pos) * score_bins + bins
    hist = np.bincount(flat.ravel(), minlength=k * 2 * score_bins)
    return hist.reshape(k, 2, score_bins).astype(np.int64)


def auc_from_hist(pos: FloatArray, neg: FloatArray) -> tuple[FloatArray, FloatArray]:
    """ROC AUC and its binning error bound along the last axis (ties within a bin = 1/2)."""
    pairs = pos.sum(-1) * neg.sum(-1)
    below = np.cumsum(neg, axis=-1) - neg
    wins = (pos * (below + 0.5 * neg)).sum(-1)
    return safe_div(wins, pairs), safe_div(0.5 * (pos * neg).sum(-1), pairs)


def delong_variance(pos: FloatArray, neg: FloatArray) -> FloatArray:
    """DeLong's variance of the binned ROC AUC along the last axis (0.0 where a side is empty).

    A positive in bin b beats the negatives below b and ties (1/2) those in b: its placement
    value is ``V10_b = (negatives below b + negatives in b / 2) / n_neg``; a negative's is
    ``V01_b = (positives above b + positives in b / 2) / n_pos``. Rows of one bin share it, so
    ``var = S10 / n_pos + S01 / n_neg`` with ``S10``, ``S01`` the sample variances of the
    placement values, weighted by the bin counts (DeLong, DeLong & Clarke-Pearson 1988)."""
    n_pos, n_neg = pos.sum(-1, keepdims=True), neg.sum(-1, keepdims=True)
    auc = auc_from_hist(pos, neg)[0][..., None]
    v10 = safe_div(np.cumsum(neg, axis=-1) - 0.5 * neg, n_neg)
    above = n_pos - np.cumsum(pos, axis=-1)
    v01 = safe_div(above + 0.5 * pos, n_pos)
    s10 = safe_div((pos * (v10 - auc) ** 2).sum(-1), np.maximum(n_pos[..., 0] - 1, 1))
    s01 = safe_div((neg * (v01 - auc) ** 2).sum(-1), np.maximum(n_neg[..., 0] - 1, 1))
    ok = (n_pos[..., 0] > 0) & (n_neg[..., 0] > 0)
    return np.where(ok, safe_div(s10, n_pos[..., 0]) + safe_div(s01, n_neg[..., 0]), 0.0)


def ap_from_hist(pos: FloatArray, neg: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Average precision (one threshold per bin) and its error bound, along the last axis."""
    p, q = pos[..., ::-1], neg[..., ::-1]  # descending thresholds
    tp, fp = np.cumsum(p, axis=-1), np.cumsum(q, axis=-1)
    tp0, fp0 = tp - p, fp - q
    binned = p * safe_div(tp, tp + fp)
    hi = p * safe_div(tp, tp + fp0)  # all the bin's positives ranked first
    c = tp0 + fp
    lo = p - fp * (digamma(c + p + 1.0) - digamma(c + 1.0))  # all its negatives first
    n_pos = tp[..., -1]
    err = np.maximum(hi - binned, binned - lo).sum(-1)
    return safe_div(binned.sum(-1), n_pos), safe_div(err, n_pos)


def ranking_metrics(
    hist: IntArray, names: list[str], confidence: float, *, per_class: bool, no_pos_reason: str
) -> tuple[dict[str, Any], dict[str, dict[str, MetricValue]]]:
    """ROC AUC and average precision averaged over the classes ``names``, with error bounds.

    ``hist`` holds the (m, 2, bins) histograms of the m classes ``names``. Returns the
    headline metrics (``roc_auc``, ``roc_auc_error_bound``, ``pr_auc``,
    ``pr_auc_error_bound``) and, with ``per_class``, each class's own ``roc_auc`` and
    ``pr_auc`` (else an empty dict). ``no_pos_reason`` explains an undefined ``pr_auc``.
    """
    z = normal_quantile(confidence)
    h = hist.astype(np.float64)
    neg, pos = h[:, 0], h[:, 1]
    n_pos, n_neg = pos.sum(-1), neg.sum(-1)
    auc, auc_err = auc_from_hist(pos, neg)
    ap, ap_err = ap_from_hist(pos, neg)
    auc_var = delong_variance(pos, neg)
    auc_ok, ap_ok = (n_pos > 0) & (n_neg > 0), n_pos > 0

    def auc_metric(sel: npt.NDArray[np.bool_], reason: str | None) -> MetricValue:
        value = float(auc[sel].mean())
        se = float(np.sqrt(auc_var[sel].sum())) / int(sel.sum())
        return metric_value(
            value, max(value - z * se, 0.0), min(value + z * se, 1.0), "delong", reason
        )

    def ap_metric(sel: npt.NDArray[np.bool_], reason: str | None) -> MetricValue:
        value, m = float(ap[sel].mean()), int(sel.sum())
        if m == 1:  # binomial interval on the positives (Boyd et al. 2013), Wilson form
            w_lo, w_hi = wilson_interval(value * n_pos[sel][0], n_pos[sel][0], confidence)
            return metric_value(value, float(w_lo), float(w_hi), "wilson", reason)
        se = float(np.sqrt((ap * (1 - ap) / np.maximum(n_pos, 1))[sel].sum())) / m
        lo, hi = max(value - z * se, 0.0), min(value + z * se, 1.0)
        return metric_value(value, lo, hi, "normal", reason)

    def partial(sel: npt.NDArray[np.bool_], what: str) -> str | None:
        if sel.all():
            return None
        left_out = [nm for nm, ok in zip(names, sel, strict=True) if not ok]
        return f"averaged over {int(sel.sum())} of {len(sel)} classes; {what}: {left_out}"

    one_class = "only one class present in y_true"
    by_class: dict[str, dict[str, MetricValue]] = {}
    if per_class:
        for j, nm in enumerate(names):
            sel = np.arange(len(names)) == j
            by_class[nm] = {
                "roc_auc": auc_metric(sel, None)
                if auc_ok[j]
                else metric_value(None, reason=one_class + " (one-vs-rest)"),
                "pr_auc": ap_metric(sel, None)
                if ap_ok[j]
                else metric_value(None, reason="class absent from y_true"),
            }
    headline = {
        "roc_auc": auc_metric(auc_ok, partial(auc_ok, "one-vs-rest undefined for"))
        if auc_ok.any()
        else metric_value(None, reason=one_class),
        "roc_auc_error_bound": float(auc_err[auc_ok].mean()) if auc_ok.any() else None,
        "pr_auc": ap_metric(ap_ok, partial(ap_ok, "absent from y_true"))
        if ap_ok.any()
        else metric_value(None, reason=no_pos_reason),
        "pr_auc_error_bound": float(ap_err[ap_ok].mean()) if ap_ok.any() else None,
    }
    return headline, by_class
