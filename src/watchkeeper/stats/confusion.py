"""Accuracy, precision, recall and F1 from a confusion matrix, with their intervals.

The confusion matrix is K x K counts (rows: true class, columns: predicted class). Zero
divisions follow scikit-learn's ``zero_division=0``: precision of a class never predicted,
recall of a class absent from y_true and F1 of a class absent from both are 0.0, with
``reason`` saying so and no interval.

Intervals (two-sided, level ``confidence``):

* ``"wilson"`` -- accuracy, per-class precision / recall, micro averages;
* ``"bootstrap"`` -- per-class F1 and macro / weighted averages: a parametric, seeded bootstrap
  drawing whole confusion matrices from Multinomial(n, observed cell proportions), percentile
  interval, widened to include the point value when it misses it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from watchkeeper.stats.intervals import MetricValue, metric_value, safe_div, wilson_interval

__all__ = ["bootstrap_prf", "confusion_metrics", "prf"]

_BOOTSTRAP_CELLS = 4_000_000  # multinomial cells drawn per chunk (bounds memory)
_ZERO = "0.0 by the zero_division=0 convention (as scikit-learn)"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def prf(tp: FloatArray, pred: FloatArray, true: FloatArray) -> tuple[FloatArray, ...]:
    """Per-class precision, recall, F1 (zero_division=0) and macro / weighted averages."""
    precision, recall = safe_div(tp, pred), safe_div(tp, true)
    f1 = safe_div(2.0 * tp, pred + true)
    weights = safe_div(true, true.sum(-1, keepdims=True))
    stacked = np.stack([precision, recall, f1])
    return precision, recall, f1, stacked.mean(-1), (stacked * weights).sum(-1)


def bootstrap_prf(confusion: IntArray, n_boot: int, seed: int) -> tuple[FloatArray, ...]:
    """Replicates of :func:`prf` over multinomial redraws of a non-empty confusion matrix."""
    rng = np.random.default_rng(seed)
    k, n = confusion.shape[0], int(confusion.sum())
    pvals = (confusion / n).ravel()
    chunk = max(1, _BOOTSTRAP_CELLS // (k * k))
    parts = []
    for start in range(0, n_boot, chunk):
        draws = rng.multinomial(n, pvals, size=min(chunk, n_boot - start))
        draws = draws.reshape(-1, k, k).astype(np.float64)
        parts.append(prf(np.diagonal(draws, axis1=1, axis2=2), draws.sum(1), draws.sum(2)))
    # per-class arrays are (B, K); averages are (3, B) -> transpose to (B, 3)
    return tuple(np.concatenate([p[j] if j < 3 else p[j].T for p in parts]) for j in range(5))


def confusion_metrics(
    confusion: IntArray,
    classes: list[str],
    confidence: float,
    *,
    n_bootstrap: int,
    seed: int,
    positive_class: str | None,
) -> dict[str, Any]:
    """The metrics of a non-empty confusion matrix, as documented in the module docstring.

    Keys: ``accuracy``, ``macro`` / ``weighted`` / ``micro`` ({precision, recall, f1}),
    ``precision`` / ``recall`` / ``f1`` (``positive_class`` if given, else macro) and
    ``per_class`` ({class: {support, predicted, precision, recall, f1}}).
    ``n_bootstrap=0`` disables the bootstrap intervals.
    """
    k, n = len(classes), int(confusion.sum())
    c = confusion.astype(np.float64)
    tp, pred, true = np.diag(c), c.sum(0), c.sum(1)
    prec, rec, f1, macro, weighted = prf(tp, pred, true)
    reps = bootstrap_prf(confusion, n_bootstrap, seed) if n_bootstrap else None
    alpha = (1.0 - float(confidence)) / 2.0

    def boot(point: float, samples: FloatArray | None, reason: str | None = None) -> MetricValue:
        if samples is None:
            return metric_value(point, reason=reason)
        lo, hi = np.quantile(samples, [alpha, 1.0 - alpha])
        return metric_value(point, float(lo), float(hi), "bootstrap", reason)

    def wilson(point: float, succ: float, trials: float, reason: str | None = None) -> MetricValue:
        if trials == 0:
            return metric_value(point, reason=reason)
        lo, hi = wilson_interval(succ, trials, confidence)
        return metric_value(point, float(lo), float(hi), "wilson", reason)

    per_class: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(classes):
        per_class[name] = {
            "support": int(true[i]),
            "predicted": int(pred[i]),
            "precision": wilson(
                prec[i], tp[i], pred[i], None if pred[i] else f"class never predicted; {_ZERO}"
            ),
            "recall": wilson(
                rec[i], tp[i], true[i], None if true[i] else f"class absent from y_true; {_ZERO}"
            ),
            "f1": boot(
                f1[i],
                None if pred[i] + true[i] == 0 or reps is None else reps[2][:, i],
                None if pred[i] + true[i] else f"class absent from both; {_ZERO}",
            ),
        }
    n_zero = int(((pred == 0) | (true == 0)).sum())
    avg_reason = f"{n_zero} of {k} classes contribute {_ZERO}" if n_zero else None
    acc = wilson(float(tp.sum() / n), tp.sum(), n)
    out: dict[str, Any] = {"accuracy": acc}
    names = ["precision", "recall", "f1"]
    out["macro"] = {
        m: boot(macro[j], None if reps is None else reps[3][:, j], avg_reason)
        for j, m in enumerate(names)
    }
    out["weighted"] = {
        m: boot(weighted[j], None if reps is None else reps[4][:, j], avg_reason)
        for j, m in enumerate(names)
    }
    out["micro"] = {m: dict(acc) for m in names}
    head = per_class[positive_class] if positive_class else out["macro"]
    out.update({m: dict(head[m]) for m in names})
    out["per_class"] = per_class
    return out
