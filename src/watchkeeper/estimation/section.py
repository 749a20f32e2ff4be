"""The ``estimated_performance`` section of a report: fit an estimator on the labelled reference
(CBPE for classification with scores, DLE for regression), estimate the current window, and,
when the window has its labels too, set the realized value next to the estimate and flag a
disagreement beyond the interval: the estimate assumes P(y | x) did not change, and a realized
value outside its interval says it likely did (concept drift).

A section is ``None`` when nothing can be estimated; ``note`` then says why (one line), and
the report turns it into a finding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from watchkeeper.errors import InputError
from watchkeeper.estimation.cbpe import CBPE, class_indices, confusion_metrics
from watchkeeper.estimation.dle import DLE
from watchkeeper.estimation.features import FeatureEncoder
from watchkeeper.schema import Schema
from watchkeeper.stats.labels import label_strings, null_mask, sort_classes
from watchkeeper.stats.performance import detect_task
from watchkeeper.stats.score_histograms import auc_from_hist, score_histogram

__all__ = ["HEADLINE", "LOWER_IS_BETTER", "Estimator", "estimated_section", "fit_estimator"]

HEADLINE = {"binary": "accuracy", "multiclass": "accuracy", "regression": "mae"}
LOWER_IS_BETTER = {"mae", "rmse", "mse"}
CONFIDENCE = 0.95


@dataclass
class Estimator:
    """What a reference fits once: the estimator, its inputs, the reference's realized metrics."""

    task: str
    model: CBPE | DLE
    target: str
    prediction: str
    scores: list[str] | None
    encoder: FeatureEncoder | None
    reference: dict[str, float | None]  # realized on the reference: the baseline


def _column(table: pa.Table, name: str) -> npt.NDArray[Any]:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False))


def _scores(table: pa.Table, names: Sequence[str]) -> npt.NDArray[np.float64]:
    cols = [
        np.asarray(table.column(n).cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
        for n in names
    ]
    return cols[0] if len(cols) == 1 else np.column_stack(cols)


def fit_estimator(
    reference: pa.Table,
    schema: Schema,
    target: str,
    prediction: str,
    scores: Sequence[str] | None,
    seed: int | None = 0,
) -> Estimator | str:
    """The fitted estimator, or why there is none (a one-line note)."""
    missing = [n for n in (target, prediction, *(scores or ())) if n not in reference.column_names]
    if missing:
        return f"the reference has no {missing} column: no performance estimate"
    y, pred = _column(reference, target), _column(reference, prediction)
    fit_seed = 0 if seed is None else int(seed)
    try:
        score_arr = _scores(reference, scores) if scores else None
        if detect_task(y, pred, score_arr) == "regression":  # as the performance section does
            encoder = FeatureEncoder.fit(reference, schema, exclude=(target, prediction))
            x = encoder.transform(reference)
            dle = DLE.fit(x, y, pred, categorical=encoder.categorical, seed=fit_seed)
            baseline = realized_regression(y, pred)
            return Estimator("regression", dle, target, prediction, None, encoder, baseline)
        if not scores:
            return "no scores= given: a classifier's performance is estimated from its scores"
        classes = sort_classes(label_strings(y[~null_mask(y)]))
        s = _scores(reference, scores)
        cbpe = CBPE.fit(y, s, classes=classes, seed=fit_seed)
        baseline = realized_classification(cbpe, y, pred, s)
        return Estimator(cbpe.task, cbpe, target, prediction, list(scores), None, baseline)
    except InputError as exc:
        return f"no performance estimate: {exc}"


def realized_regression(y: npt.ArrayLike, pred: npt.ArrayLike) -> dict[str, float | None]:
    t, p = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(p)
    if not ok.any():
        return {"mae": None, "rmse": None, "mse": None}
    err = t[ok] - p[ok]
    mse = float(np.mean(err**2))
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(mse)), "mse": mse}


def realized_classification(
    cbpe: CBPE, y: npt.ArrayLike, pred: npt.ArrayLike, scores: npt.ArrayLike
) -> dict[str, float | None]:
    """The realized metrics, with the estimate's definitions: the confusion metrics of the
    labelled rows, ROC AUC on the same binned raw scores."""
    t, p = class_indices(y, cbpe.classes, "y_true"), class_indices(pred, cbpe.classes, "y_pred")
    raw, ok = cbpe.raw_probabilities(np.asarray(scores, dtype=np.float64), cbpe.classes, len(t))
    ok &= (t >= 0) & (p >= 0)
    if not ok.any():
        return {name: None for name in ("accuracy", "precision", "recall", "f1", "specificity")}
    k = len(cbpe.classes)
    m = np.bincount(p[ok] * k + t[ok], minlength=k * k).reshape(k, k).astype(np.float64)
    out: dict[str, float | None] = {n: float(v) for n, v in confusion_metrics(m).items()}
    hist = score_histogram(raw[ok], t[ok], cbpe.bins).astype(np.float64)
    sel = [1] if k == 2 else list(range(k))
    neg, pos = hist[sel, 0], hist[sel, 1]
    defined = (neg.sum(-1) > 0) & (pos.sum(-1) > 0)
    auc = auc_from_hist(pos, neg)[0]
    out["roc_auc"] = float(auc[defined].mean()) if defined.any() else None
    return out


def absent_outputs(current: pa.Table, prediction: str, scores: Sequence[str] | None) -> str | None:
    """Why ``current`` cannot be estimated whatever the fit: it lacks the prediction or a
    score column (checked before the features, and before any estimator is fitted)."""
    missing = [n for n in (prediction, *(scores or ())) if n not in current.column_names]
    if missing:
        return f"the current data has no {missing} column: no performance estimate"
    return None


def estimated_section(est: Estimator, current: pa.Table) -> tuple[dict[str, Any] | None, str]:
    """The section of ``current``, or None and why."""
    note = absent_outputs(current, est.prediction, est.scores)
    if note is not None:
        return None, note
    features = [] if est.encoder is None else est.encoder.names
    missing = [n for n in features if n not in current.column_names]
    if missing:
        return None, f"the current data has no {missing} column: no performance estimate"
    pred = _column(current, est.prediction)
    realized: dict[str, float | None] | None = None
    labelled = est.target in current.column_names and bool(
        (~null_mask(_column(current, est.target))).any()
    )
    if isinstance(est.model, DLE):
        assert est.encoder is not None
        x = est.encoder.transform(current)
        out = est.model.estimate(est.model.state(x, pred), CONFIDENCE)
        if labelled:
            realized = realized_regression(_column(current, est.target), pred)
    else:
        assert est.scores is not None
        s = _scores(current, est.scores)
        out = est.model.estimate(est.model.state(s, pred), CONFIDENCE)
        out["calibration"] = {"method": est.model.calibrator.method, **est.model.calibrator.quality}
        if labelled:
            realized = realized_classification(est.model, _column(current, est.target), pred, s)
    if isinstance(est.model, DLE):
        out["error_model"] = est.model.holdout
    headline = HEADLINE[est.task]
    out.update(target=est.target, prediction=est.prediction, headline=headline)
    out["reference"] = dict(est.reference)
    out["realized"] = realized
    out["outside_interval"] = _outside(out["metrics"], realized)
    out["concept_drift_suspected"] = headline in out["outside_interval"]
    out["worse_than_reference"] = [
        name for name, m in out["metrics"].items() if _worse(m, est.reference.get(name), name)
    ]
    out["degraded"] = headline in out["worse_than_reference"]
    return out, ""


def _outside(metrics: dict[str, Any], realized: dict[str, float | None] | None) -> list[str]:
    """The metrics whose realized value lies outside the estimate's interval."""
    if not realized:
        return []
    out = []
    for name, m in metrics.items():
        r = realized.get(name)
        if r is None or m.get("ci_low") is None or m.get("ci_high") is None:
            continue
        if not m["ci_low"] <= r <= m["ci_high"]:
            out.append(name)
    return out


def _worse(m: dict[str, Any], baseline: float | None, name: str) -> bool:
    """The estimate's interval lies wholly on the bad side of the reference's realized value."""
    if baseline is None or m.get("ci_low") is None or m.get("ci_high") is None:
        return False
    if name in LOWER_IS_BETTER:
        return bool(m["ci_low"] > baseline)
    return bool(m["ci_high"] < baseline)
