"""The performance section of a report: the same metrics on the reference and the current data,
from mergeable aggregates, and whether the current value is credibly worse."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from watchkeeper.io import column_values
from watchkeeper.quality import Finding
from watchkeeper.stats.performance import ClassificationAggregate, RegressionAggregate, detect_task

HEADLINE = {"binary": "accuracy", "multiclass": "accuracy", "regression": "rmse"}
LOWER_IS_BETTER = {"rmse", "mae", "mape", "log_loss"}


def _column(table: pa.Table, name: str | None) -> np.ndarray[Any, Any] | None:
    if name is None or name not in table.column_names:
        return None
    return column_values(table, name)


def _scores(table: pa.Table, names: Sequence[str] | None) -> np.ndarray[Any, Any] | None:
    if not names or any(n not in table.column_names for n in names):
        return None
    cols = [np.asarray(table.column(n).to_numpy(zero_copy_only=False), dtype=float) for n in names]
    return cols[0] if len(cols) == 1 else np.column_stack(cols)


def _classes(*arrays: np.ndarray[Any, Any] | None) -> list[str]:
    from watchkeeper.stats.labels import label_strings, null_mask, sort_classes

    labels = [label_strings(a[~null_mask(a)]) for a in arrays if a is not None]
    return sort_classes(np.concatenate(labels)) if labels else []


def performance_section(
    reference: pa.Table,
    current: pa.Table,
    target: str,
    prediction: str,
    scores: Sequence[str] | None,
    findings: list[Finding],
    cache: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics of both sides; a side without labels gets ``None`` and a finding says why.

    ``scores``: for binary classification one column with the probability of the positive
    class (the last class in sorted order); for multiclass one column per class, in sorted
    class order.

    ``cache``: a dict kept with a fitted reference, where the reference's arrays, task, labels
    and metrics (per class list) are kept for the next call; the section is the same.
    """
    memo: dict[str, Any] = {} if cache is None else cache
    sides = {"reference": reference, "current": current}
    if "arrays" not in memo:
        memo["arrays"] = (_column(reference, target), _column(reference, prediction))
        memo["arrays"] += (_scores(reference, scores),)
    arrays = {
        "reference": memo["arrays"],
        "current": (
            _column(current, target),
            _column(current, prediction),
            _scores(current, scores),
        ),
    }
    labelled = [k for k, (y, p, _) in arrays.items() if y is not None and p is not None]
    section: dict[str, Any] = {"target": target, "prediction": prediction, "task": None}
    for side, table in sides.items():
        section[side] = None
        if side not in labelled:
            absent = [n for n in (target, prediction) if n not in table.column_names]
            names = " and ".join(repr(n) for n in absent)
            findings.append(
                Finding(
                    None,
                    "info",
                    "no_labels",
                    f"the {side} data has no {names} column{'s' if len(absent) > 1 else ''}: "
                    "no performance for it",
                )
            )
    if not labelled:
        return section
    y0, p0, s0 = arrays[labelled[0]]
    assert y0 is not None and p0 is not None
    if labelled[0] != "reference":
        task = detect_task(y0, p0, s0)
    elif "task" not in memo:  # the reference decides the task whenever it has labels
        task = memo["task"] = detect_task(y0, p0, s0)
    else:
        task = memo["task"]
    section["task"], section["headline"] = task, HEADLINE[task]
    classes = None
    if task != "regression":
        if "reference" in labelled and "labels" not in memo:
            memo["labels"] = _classes(*arrays["reference"][:2])  # its distinct labels, sorted
        seen = [np.asarray(memo["labels"])] if "reference" in labelled else []
        current = arrays["current"][:2] if "current" in labelled else ()
        classes = _classes(*seen, *current)
    for side in labelled:
        key = f"metrics {task} {classes}"
        if side == "reference" and key in memo:
            section[side] = copy.deepcopy(memo[key])
            continue
        y, p, s = arrays[side]
        assert y is not None and p is not None
        if task == "regression":
            section[side] = RegressionAggregate.from_arrays(y, p).metrics()
        else:
            agg = ClassificationAggregate.from_arrays(y, p, scores=s, classes=classes)
            section[side] = agg.metrics()
        if side == "reference" and cache is not None:
            memo.pop(next((k for k in memo if k.startswith("metrics ")), ""), None)
            memo[key] = copy.deepcopy(section[side])
    section["degraded"] = _degraded(section)
    if section["degraded"]:
        h = section["headline"]
        findings.append(
            Finding(
                None,
                "warning",
                "performance_degraded",
                f"{h} fell from {section['reference'][h]['value']:.4g} to "
                f"{section['current'][h]['value']:.4g}, beyond its confidence interval",
            )
        )
    return section


def _degraded(section: dict[str, Any]) -> bool:
    """True when the reference value lies outside the current value's interval, on the bad side."""
    ref, cur, name = section.get("reference"), section.get("current"), section.get("headline")
    if not ref or not cur or name is None:
        return False
    r, c = ref.get(name) or {}, cur.get(name) or {}
    if r.get("value") is None or c.get("value") is None:
        return False
    if name in LOWER_IS_BETTER:
        return c.get("ci_low") is not None and c["ci_low"] > r["value"]
    return c.get("ci_high") is not None and c["ci_high"] < r["value"]
