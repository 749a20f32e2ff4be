"""Model performance from mergeable aggregates: the public entry point.

Classification lives in :mod:`watchkeeper.stats.classification` (its interval methods are
documented there), regression in :mod:`watchkeeper.stats.regression`; the metric value shape
is documented in :mod:`watchkeeper.stats.intervals`.
This module re-exports both and adds :func:`detect_task`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InputError
from watchkeeper.stats.classification import ClassificationAggregate
from watchkeeper.stats.intervals import MetricValue
from watchkeeper.stats.labels import Labels, label_strings, null_mask
from watchkeeper.stats.regression import RegressionAggregate

__all__ = ["ClassificationAggregate", "MetricValue", "RegressionAggregate", "detect_task"]


def detect_task(
    y_true: Labels,
    y_pred: Labels,
    scores: npt.ArrayLike | None = None,
    *,
    max_classes: int = 20,
) -> str:
    """Guess "binary", "multiclass" or "regression" from the (non-null) labels.

    Rule, in order:

    1. scores given: classification -- "multiclass" if they are 2-D with more than 2 columns;
    2. any non-numeric label (strings, bools, mixed objects): classification;
    3. any numeric value that is not a whole number: "regression";
    4. whole numbers only: classification if y_true and y_pred together hold at most
       ``max_classes`` distinct values, else "regression".

    Classification is "binary" with at most 2 distinct labels, else "multiclass".

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> detect_task(rng.integers(0, 2, 50), rng.integers(0, 2, 50))
    'binary'
    >>> detect_task(np.array(["a", "b", "c"]), np.array(["a", "a", "c"]))
    'multiclass'
    >>> detect_task(rng.normal(size=50), rng.normal(size=50))
    'regression'
    """
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1:
        raise InputError(f"y_true and y_pred must be 1-D, got shapes {t.shape}, {p.shape}")
    values = [_infer(a[~null_mask(a)]) for a in (t, p)]
    if any(v.dtype.kind in "iuf" for v in values):  # bools next to numbers read as 0 / 1
        values = [v.astype(np.int64) if v.dtype.kind == "b" else v for v in values]
    if scores is not None and np.ndim(scores) == 2 and np.shape(scores)[1] > 2:
        return "multiclass"
    numeric = all(v.dtype.kind in "iuf" for v in values)
    if scores is None and numeric:
        nums = np.concatenate([v.astype(np.float64) for v in values])
        if not (np.isfinite(nums).all() and (nums == np.round(nums)).all()):
            return "regression"
        if len(np.unique(nums)) > max_classes:
            return "regression"
    labels = np.unique(np.concatenate([label_strings(v) for v in values]))
    return "binary" if len(labels) <= 2 else "multiclass"


def _infer(a: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """An object array of plain values as a typed array (numbers, bools or strings)."""
    if a.dtype.kind != "O" or not a.size:
        return a
    try:
        inferred = np.array(a.tolist())
    except ValueError:
        return a
    return inferred if inferred.ndim == 1 else a
