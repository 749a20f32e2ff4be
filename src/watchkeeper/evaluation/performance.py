"""A window's performance points with their confidence intervals, and the training baseline.

Each performance point of a window (the catalogue's metrics of the model's task, see
:mod:`watchkeeper.evaluation.metrics`) carries its interval in ``detail``::

    {"low": float | None, "high": float | None, "level": 0.95,
     "method": "wilson" | "bootstrap" | "delong" | "normal" | "delta" | None,
     "n": int, "reason": str | None}

``n`` is the number of labelled predictions the metric is computed from (for ``roc_auc``:
those that carried a score); ``low`` and ``high`` are ``None`` (and ``method`` too) when the
metric has no interval, ``reason`` then says why (a class never predicted, fewer than two
rows). The intervals are the statistics core's, computed from the window's mergeable
aggregate alone (:mod:`watchkeeper.stats.confusion`, :mod:`watchkeeper.stats.score_histograms`,
:mod:`watchkeeper.stats.regression`): the batch report's performance section uses the same
code. Bootstraps are seeded, so evaluating a window twice writes the same points.

The training baseline of a version is the same metrics over its reference's labelled rows
(when the reference has the target and the prediction), folded at registration into an
aggregate of the same kind (``wk_versions.reference_performance``).

>>> from watchkeeper.stats.labelled import fold_labelled
>>> entry = fold_labelled("classification", None, [("a", "a", None)] * 8 + [("b", "a", None)] * 2)
>>> value, detail = performance_points(entry)["accuracy"]
>>> value, detail["method"], detail["n"], round(detail["low"], 3), round(detail["high"], 3)
(0.8, 'wilson', 10, 0.49, 0.943)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from watchkeeper.evaluation.metrics import CATALOGUE, performance
from watchkeeper.stats.classification import ClassificationAggregate
from watchkeeper.stats.regression import RegressionAggregate
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

__all__ = ["LEVEL", "baseline", "interval_detail", "performance_points"]

LEVEL = 0.95
N_BOOTSTRAP = 1000  # F1 (and multiclass macro averages): a seeded parametric bootstrap

Point = tuple[float | None, dict[str, Any]]


def interval_detail(metric: Mapping[str, Any] | None, n: int) -> dict[str, Any]:
    """A point's ``detail`` from a metric value of the statistics core (see the module)."""
    metric = metric or {"reason": "not computed"}
    return {
        "low": metric.get("ci_low"),
        "high": metric.get("ci_high"),
        "level": LEVEL,
        "method": metric.get("ci_method"),
        "n": int(n),
        "reason": metric.get("reason"),
    }


def _point(metric: Mapping[str, Any] | None, n: int) -> Point:
    value = None if metric is None else metric.get("value")
    return (None if value is None else float(value)), interval_detail(metric, n)


def performance_points(entry: Mapping[str, Any]) -> dict[str, Point]:
    """name → (value, detail) of the catalogue's performance metrics of the folded aggregate
    ``entry`` (:func:`watchkeeper.stats.labelled.fold_labelled`); a ``scored`` one only when
    some labelled predictions carried a score."""
    if entry["task"] == "regression":
        reg = RegressionAggregate.from_dict(entry["aggregate"])
        m = reg.metrics(LEVEL)
        return {p.name: _point(m[p.name], reg.n) for p in performance("regression")}
    metrics = performance("classification")
    agg = ClassificationAggregate.from_dict(entry["aggregate"])
    m = agg.metrics(LEVEL, n_bootstrap=N_BOOTSTRAP, seed=0)
    out = {p.name: _point(m[p.name], agg.n) for p in metrics if not p.scored}
    if entry.get("scored"):  # the labelled predictions that carried a score
        scored = ClassificationAggregate.from_dict(entry["scored"])
        s = scored.metrics(LEVEL, n_bootstrap=0)
        out |= {p.name: _point(s.get(p.name), scored.n) for p in metrics if p.scored}
    return out


def baseline(
    store: Store, model: str, metric: str, version: str | None = None
) -> list[dict[str, Any]]:
    """The training baseline of a performance ``metric``: ``{"version", "value", "detail"}``
    per version of the model (or ``version`` alone) whose reference had labels; empty for a
    metric that is not a performance metric of a task."""
    entry = CATALOGUE.get(metric)
    if entry is None or entry.task is None:
        return []
    v = t.versions.c
    q = sa.select(v.version, v.reference_performance).where(v.model == model)
    if version is not None:
        q = q.where(v.version == version)
    with store.engine.connect() as conn:
        rows = conn.execute(q.order_by(v.created_at)).all()
    out = []
    for name, folded in rows:
        point = None if folded is None else performance_points(folded).get(metric)
        if point is not None:
            out.append({"version": name, "value": point[0], "detail": point[1]})
    return out
