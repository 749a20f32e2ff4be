"""The reference value of a metric, for ``change`` monitors ("accuracy drops by more than 5 %").

Where the version's training reference can say it: the performance metrics are computed on the
reference sample the service keeps (up to 5,000 rows, drawn at registration) when it holds the
target and the prediction columns, with the same aggregates the evaluator uses for windows;
``missing_share`` comes from the reference profile. Every other metric (latency, volume, error
rate, drift) has no value in a training set: such monitors use the mean of their first
evaluated windows instead (see :mod:`watchkeeper.alerts.verdicts`).
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np

from watchkeeper.evaluation.metrics import performance
from watchkeeper.store.state import Store

log = logging.getLogger("watchkeeper.alerts")

# the catalogue's performance metrics that need no score: the reference sample has none
CLASSIFICATION = tuple(m.name for m in performance("classification") if not m.scored)
REGRESSION = tuple(m.name for m in performance("regression") if not m.scored)


def reference_value(
    store: Store, model: str, version: str, metric: str, feature: str
) -> float | None:
    """The metric on the version's reference data, or None when the reference cannot say."""
    from watchkeeper.quality import column_quality
    from watchkeeper.schema import Role

    schema, profile = store.reference(model, version)
    if metric == "missing_share":
        prof = profile.columns.get(feature)
        return None if prof is None else _finite(column_quality(prof)["missing_share"])
    if metric not in CLASSIFICATION + REGRESSION:
        return None
    targets, predictions = schema.by_role(Role.TARGET), schema.by_role(Role.PREDICTION)
    if not targets or not predictions:
        return None
    sample = store.version(model, version).get("reference_sample")
    if not sample:
        return None
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(sample))
    names = (targets[0].name, predictions[0].name)
    if not all(n in table.column_names for n in names):
        return None
    y = table.column(names[0]).to_pylist()
    p = table.column(names[1]).to_pylist()
    try:
        return _metric(metric, y, p)
    except Exception:  # a reference the aggregates cannot read: no reference value
        log.warning("no reference %s for %s %s", metric, model, version, exc_info=True)
        return None


def _metric(metric: str, y: list[Any], p: list[Any]) -> float | None:
    from watchkeeper.stats.performance import ClassificationAggregate, RegressionAggregate

    m: dict[str, Any]
    if metric in REGRESSION:
        m = RegressionAggregate.from_arrays(
            np.asarray(y, dtype=float), np.asarray(p, dtype=float)
        ).metrics()
    else:
        # the same string labels the label join feeds the window aggregates
        yt = np.array([None if v is None else str(v) for v in y], dtype=object)
        yp = np.array([None if v is None else str(v) for v in p], dtype=object)
        m = ClassificationAggregate.from_arrays(yt, yp).metrics(n_bootstrap=0)
    value = m.get(metric)
    return _finite(value.get("value") if isinstance(value, dict) else None)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if np.isfinite(v) else None
