"""The performance of labelled predictions, folded into a stored aggregate as labels arrive.

A window's performance is a mergeable aggregate kept as a JSON-safe dict:
``{"task", "aggregate"}`` and, for a binary target whose two classes are known, ``"scored"``:
a second classification aggregate over the labelled predictions that carried a valid score
(in [0, 1]) and whose label and prediction are both of the two classes. The window's ROC AUC
comes from it; predictions without a score still count in accuracy, F1 and the rest.

Examples
--------
>>> agg = fold_labelled("classification", None, [("yes", "yes", 0.9), ("no", "yes", 0.4)],
...                     classes=["no", "yes"])
>>> agg = fold_labelled("classification", agg, [("no", "no", 0.2)], classes=["no", "yes"])
>>> from watchkeeper.stats.classification import ClassificationAggregate
>>> ClassificationAggregate.from_dict(agg["aggregate"]).n, "scored" in agg
(3, True)
>>> binary_classes(["yes", "no"])
['no', 'yes']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from watchkeeper.errors import ProfileMismatchError
from watchkeeper.stats.classification import ClassificationAggregate
from watchkeeper.stats.labels import sort_classes
from watchkeeper.stats.regression import RegressionAggregate

# (prediction, label, score) of one labelled prediction
Labelled = tuple[str | None, str, float | None]
TASKS = ("classification", "regression")


def fold_labelled(
    task: str,
    old: dict[str, Any] | None,
    items: Sequence[Labelled],
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The stored aggregate ``old`` (None: none yet) with ``items`` added.

    ``task`` is "classification" or "regression"; ``classes``, the two classes of a binary
    target in the aggregate's order (see :func:`binary_classes`), or None."""
    if task not in TASKS:
        raise ValueError(f"task {task!r}: use one of {', '.join(TASKS)}")
    preds = [item[0] for item in items]
    labels = [item[1] for item in items]
    if task == "regression":
        y = np.array([_num(v) for v in labels], dtype=float)
        p = np.array([_num(v) for v in preds], dtype=float)
        reg = RegressionAggregate.from_arrays(y, p)
        if old is not None:
            reg = RegressionAggregate.from_dict(old["aggregate"]).merge(reg)
        return {"task": task, "aggregate": reg.to_dict()}
    y_true = np.array(labels, dtype=object)
    y_pred = np.array([None if v is None else str(v) for v in preds], dtype=object)
    agg = ClassificationAggregate.from_arrays(y_true, y_pred)
    if old is not None:
        agg = ClassificationAggregate.from_dict(old["aggregate"]).merge(agg)
    out: dict[str, Any] = {"task": task, "aggregate": agg.to_dict()}
    scored = None if old is None else old.get("scored")
    if classes is not None and len(classes) == 2:
        keep = [
            i
            for i, (pred, label, score) in enumerate(items)
            if score is not None
            and np.isfinite(score)
            and 0.0 <= score <= 1.0
            and label in classes
            and pred in classes
        ]
        if keep:
            part = ClassificationAggregate.from_arrays(
                y_true[keep],
                y_pred[keep],
                np.array([items[i][2] for i in keep], dtype=float),
                classes=np.array(list(classes), dtype=object),
            )
            try:
                scored = (
                    part
                    if scored is None
                    else ClassificationAggregate.from_dict(scored).merge(part)
                ).to_dict()
            except ProfileMismatchError:  # e.g. an old aggregate of other classes
                scored = part.to_dict()
    if scored is not None:
        out["scored"] = scored
    return out


def binary_classes(categories: Sequence[object] | None) -> list[str] | None:
    """The two classes of a binary target in class order (the positive class last), from the
    target's categories; None unless there are exactly two."""
    if categories is None or len(categories) != 2:
        return None
    return [str(c) for c in sort_classes([str(c) for c in categories])]


def _num(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
