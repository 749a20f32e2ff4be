"""A window's estimated performance before its labels arrive: ``estimated_accuracy``,
``estimated_precision``, ``estimated_recall``, ``estimated_f1``, ``estimated_roc_auc``
(classification, CBPE) or ``estimated_mae``, ``estimated_rmse`` (regression, DLE); see
``docs/estimation.md``.

The estimator is fitted once, when the version is registered (``ingest.registry``), and kept
with it (``wk_model_versions.reference_estimation``, :mod:`watchkeeper.estimation.state`). A
window's estimate is computed from its rows, read from the Parquet lake as those of
``multivariate_pca`` are (:func:`watchkeeper.evaluation.joint.window_rows`): CBPE's state
needs each row's calibrated scores by its predicted class, which the bucket profile (a
histogram of each score column alone) does not hold, and DLE's needs the rows' features. The
estimate is the library's (``Report.estimated_performance``) on the same rows with the same
estimator; it depends on the window's events only, not its labels, so it is cached with the
drift points and a window evaluated again for its labels does not read the lake again.

Each point's ``detail`` has the interval in the shape of the realized metrics' (``low``,
``high``, ``level``, ``method``, ``n``, ``reason``; see
:mod:`watchkeeper.evaluation.performance`) and ``estimator`` (``cbpe`` or ``dle``),
``reference_value`` (the metric realized on the reference), ``skipped_rows`` (rows without a
prediction or scores). Only the whole model's windows get it (not a segment's). A version
without an estimator gets no points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.estimation.dle import DLE
from watchkeeper.estimation.section import Estimator
from watchkeeper.estimation.state import estimator_from_bytes
from watchkeeper.evaluation.joint import window_rows
from watchkeeper.evaluation.metrics import Task, estimated
from watchkeeper.evaluation.performance import LEVEL, interval_detail
from watchkeeper.evaluation.window_drift import VersionState, point
from watchkeeper.store.state import Store

__all__ = ["ESTIMATED", "EstimatedPerformance", "estimate_window"]

# the metrics written per task (the catalogue's ``estimated`` entries), without ``estimated_``
ESTIMATED = {
    task: tuple(m.name.removeprefix("estimated_") for m in estimated(task))
    for task in ("classification", "regression")
}
RESERVED_PREDICTION = "prediction"  # an event's prediction field, when not a named column


def _window_table(est: Estimator, rows: pa.Table) -> pa.Table | None:
    """The window's rows with the estimator's column names: the prediction (the named column,
    else the event's ``prediction`` field), the scores (per row the named column, else the
    event's ``scores`` map entry ``score.<class>``: the score columns are in class order,
    a binary model's is the positive class's) and the features; None if one is missing."""
    n = rows.num_rows
    cols: dict[str, Any] = {}
    present = [c for c in (est.prediction, RESERVED_PREDICTION) if c in rows.column_names]
    if not present:
        return None
    if len(present) == 1:  # as stored: its labels read as the reference's were
        cols[est.prediction] = rows.column(present[0])
    else:
        cols[est.prediction] = pc.coalesce(*(rows.column(c).cast(pa.string()) for c in present))
    if est.scores is not None:
        assert not isinstance(est.model, DLE)
        classes = est.model.classes
        mapped = [f"score.{c}" for c in (classes[-1:] if len(classes) == 2 else classes)]
        if len(mapped) != len(est.scores):
            mapped = [""] * len(est.scores)
        for name, entry in zip(est.scores, mapped, strict=True):
            found = [
                rows.column(c).cast(pa.float64()) for c in (name, entry) if c in rows.column_names
            ]
            if not found:
                return None
            cols[name] = found[0] if len(found) == 1 else pc.coalesce(*found)
    if est.encoder is not None:
        if est.encoder.missing(rows):
            return None
        for name in est.encoder.names:
            cols[name] = rows.column(name)
    return pa.table(cols) if cols else pa.table({"_": pa.nulls(n)})


def estimate_window(est: Estimator, rows: pa.Table) -> dict[str, Any] | None:
    """The estimator's output (``metrics``, ``rows``, ...) on a window's rows; None when they
    lack a column the estimator needs."""
    table = _window_table(est, rows)
    if table is None:
        return None
    pred = np.asarray(table.column(est.prediction).to_numpy(zero_copy_only=False))
    if isinstance(est.model, DLE):
        assert est.encoder is not None
        x = est.encoder.transform(table)
        return est.model.estimate(est.model.state(x, pred), LEVEL)
    assert est.scores is not None
    s = np.column_stack(
        [
            np.asarray(table.column(c).to_numpy(zero_copy_only=False), dtype=np.float64)
            for c in est.scores
        ]
    )
    out = est.model.estimate(est.model.state(s[:, 0] if s.shape[1] == 1 else s, pred), LEVEL)
    out["calibration"] = est.model.calibrator.method
    return out


class EstimatedPerformance:
    """The ``estimated_*`` series (a ``WindowSeries``): one point per metric per whole-model
    window of a version that has an estimator."""

    def __init__(self, lake_dir: Path) -> None:
        self.lake_dir = lake_dir
        self.estimators = VersionState(Store.reference_estimation, estimator_from_bytes)
        self.windows_read = 0  # windows whose rows were read from the lake (tests count them)

    def estimator(self, store: Store, model: str, version: str) -> Estimator | None:
        return self.estimators.get(store, model, version)

    def __call__(self, store: Store, model: str, row: dict[str, Any]) -> list[dict[str, Any]]:
        if row["segment"] not in ("", "*"):
            return []
        est = self.estimator(store, model, row["version"])
        if est is None:
            return []
        start = int(row["bucket"])
        end = start + int(row["granularity"])
        wanted = [est.prediction, RESERVED_PREDICTION, *(est.scores or [])]
        if est.encoder is not None:
            wanted += est.encoder.names
        if est.scores is not None and not isinstance(est.model, DLE):
            wanted += [f"score.{c}" for c in est.model.classes]
        columns = list(dict.fromkeys(wanted))
        rows = window_rows(store, self.lake_dir, model, row["version"], start, end, columns)
        self.windows_read += 1
        out = estimate_window(est, rows)
        task: Task = "regression" if est.task == "regression" else "classification"
        points = []
        for name in ESTIMATED[task]:
            metric: dict[str, Any] = (
                {"value": None, "reason": "the window's events lack a column the estimator needs"}
                if out is None
                else out["metrics"][name]
            )
            detail = {
                **interval_detail(metric, 0 if out is None else out["rows"]),
                "estimator": "dle" if task == "regression" else "cbpe",
                "reference_value": est.reference.get(name),
                "skipped_rows": 0 if out is None else out["skipped_rows"],
                "window_rows": rows.num_rows,
            }
            value = metric["value"]
            points.append(point(f"estimated_{name}", "", value, detail))
        return points
