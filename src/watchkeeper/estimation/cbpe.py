"""Confidence-based performance estimation (CBPE) of a classifier on an unlabelled window.

Once the scores are calibrated on the reference (:class:`Calibrator`), row i's true class is a
draw from its calibrated probabilities ``p_i``. The expected confusion matrix of a window is
then ``E[C[j, k]] = sum of p_ik over the rows predicted j``, and every metric of it (accuracy,
precision, recall, F1, specificity; binary: of the positive class, the last in sorted order;
multiclass: macro averages) is estimated at that expectation.

Mergeable state (:class:`CBPEState`): per predicted class j, the row count, ``S1[j] = sum p_i``
and ``S2[j] = sum p_i p_i^T``; per class k, a histogram of the raw score of class k on
``bins`` fixed bins over [0, 1] holding the row count and the sum of calibrated ``p_k`` per
bin. Sums merge by addition, so a window's estimate is computed from merged per-batch states.
The confusion-matrix part is exact; ROC AUC is ranked on the binned raw scores, rows sharing a
bin counting as ties (exact when each bin holds one distinct score).

Intervals: what the realized metric of the window will be once labels arrive, given its scores
(a prediction interval). Rows are independent, so row j of the confusion matrix is a sum of
independent one-draw multinomials with covariance ``diag(S1[j]) - S2[j]``; a metric's variance
is the delta method over that covariance (``"cbpe-delta"``). ROC AUC too: linearised in each
score bin's count of positives, a sum of independent Bernoulli draws of variance
``sum p (1 - p)`` (the state keeps ``sum p^2`` per bin for it). Multiclass (macro over
one-vs-rest): the per-class standard deviations are averaged, which treats the classes' AUCs
as moving together -- they do (a row that turns out not to be of its likely class lowers the
AUC of both), and the mean of the per-class deviations bounds the deviation of the mean
however they correlate, so that interval errs on the wide side.

The calibration's own error (maps fitted on a finite reference) is added: the state also
keeps, per bootstrap refit b of the maps (:class:`Calibrator`), ``S1_b[j] = sum of p_b`` over
the rows predicted j, and each metric's variance gains the variance of its value over the
``S1_b``. ROC AUC's gains the variance over the refits of its binned value, each bin's
positives moved by the bin's row count times the refit's change of the map at the bin's
centre. The two errors are independent (the reference's labels and the window's), so the
variances add. A calibration judged not needed (``method = "none"``) has no refits: its
intervals hold the sampling term alone.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> s = rng.uniform(size=5000)
>>> y = (rng.uniform(size=5000) < s).astype(int)        # calibrated scores
>>> est = CBPE.fit(y, s)
>>> window = rng.uniform(0.5, 1.0, size=1000)           # a covariate shift: more confident rows
>>> out = est.estimate(est.state(window, (window > 0.5).astype(int)))
>>> round(out["metrics"]["accuracy"]["value"], 2)       # E[accuracy] = E[s | s > 0.5] = 0.75
0.75
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InputError
from watchkeeper.estimation.calibration import Calibrator
from watchkeeper.stats.intervals import MetricValue, metric_value, normal_quantile, safe_div
from watchkeeper.stats.labels import label_strings, null_mask, sort_classes
from watchkeeper.stats.score_histograms import auc_from_hist, class_probabilities

__all__ = ["CBPE", "CONFUSION_METRICS", "CBPEState", "class_indices", "confusion_metrics"]

CONFUSION_METRICS = ("accuracy", "precision", "recall", "f1", "specificity")
DEFAULT_BINS = 1000
FloatArray = npt.NDArray[np.float64]


def confusion_metrics(m: FloatArray) -> dict[str, FloatArray]:
    """The metrics of confusion matrices ``m`` (..., K, K) indexed [predicted, true]: binary
    (K = 2) of class 1, multiclass macro averages; zero divisions give 0 (scikit-learn's
    ``zero_division=0``)."""
    k = m.shape[-1]
    n = m.sum((-2, -1))
    tp = np.diagonal(m, axis1=-2, axis2=-1)
    fp, fn = m.sum(-1) - tp, m.sum(-2) - tp
    tn = n[..., None] - tp - fp - fn
    per = {
        "precision": safe_div(tp, tp + fp),
        "recall": safe_div(tp, tp + fn),
        "f1": safe_div(2 * tp, 2 * tp + fp + fn),
        "specificity": safe_div(tn, tn + fp),
    }
    out = {"accuracy": safe_div(tp.sum(-1), n)}
    for name, v in per.items():
        out[name] = v[..., 1] if k == 2 else v.mean(-1)
    return out


def _delta_sd(
    f: Callable[[FloatArray], dict[str, FloatArray]], m: FloatArray, cov: FloatArray
) -> dict[str, float]:
    """Delta-method standard deviations of ``f(m)``; ``cov`` (K, K, K): the covariance of row j
    of ``m`` (rows independent). Gradients by central differences, all in one call."""
    k = m.shape[0]
    h = 1e-3
    steps = np.zeros((k * k, k, k))
    steps[np.arange(k * k), np.repeat(np.arange(k), k), np.tile(np.arange(k), k)] = h
    up, down = f(m[None] + steps), f(m[None] - steps)
    out = {}
    for name in up:
        g = ((up[name] - down[name]) / (2 * h)).reshape(k, k)
        out[name] = float(np.sqrt(max(np.einsum("jk,jkl,jl->", g, cov, g), 0.0)))
    return out


@dataclass
class CBPEState:
    """The mergeable sums of a window (see the module docstring)."""

    predicted: FloatArray  # (K,) rows per predicted class
    s1: FloatArray  # (K, K) [predicted j, class k]: sum of p_k
    s2: FloatArray  # (K, K, K) [predicted j, k, l]: sum of p_k p_l
    hist_n: FloatArray  # (K, bins) rows per raw-score bin of class k
    hist_p: FloatArray  # (K, bins) sum of calibrated p_k per bin
    hist_pp: FloatArray  # (K, bins) sum of p_k^2 per bin
    skipped_rows: int = 0
    # (B, K, K) [refit b, predicted j, class k]: sum of p_k under the calibration's bootstrap
    # refit b; B = 0 without refits
    s1_boot: FloatArray = field(default_factory=lambda: np.zeros((0, 0, 0)))

    @property
    def rows(self) -> int:
        return int(self.predicted.sum())

    def merge(self, other: CBPEState) -> CBPEState:
        if self.s2.shape != other.s2.shape or self.hist_n.shape != other.hist_n.shape:
            raise InputError(
                f"cannot merge CBPE states of {self.s1.shape[0]} classes × "
                f"{self.hist_n.shape[1]} bins and {other.s1.shape[0]} × {other.hist_n.shape[1]}"
            )
        # a state without refits (saved before they existed) drops them from the merge
        same = self.s1_boot.shape == other.s1_boot.shape
        return CBPEState(
            self.predicted + other.predicted,
            self.s1 + other.s1,
            self.s2 + other.s2,
            self.hist_n + other.hist_n,
            self.hist_p + other.hist_p,
            self.hist_pp + other.hist_pp,
            self.skipped_rows + other.skipped_rows,
            self.s1_boot + other.s1_boot if same else np.zeros((0, 0, 0)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "predicted": self.predicted.tolist(),
            "s1": self.s1.tolist(),
            "s2": self.s2.tolist(),
            "hist_n": self.hist_n.tolist(),
            "hist_p": self.hist_p.tolist(),
            "hist_pp": self.hist_pp.tolist(),
            "skipped_rows": self.skipped_rows,
            "s1_boot": self.s1_boot.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CBPEState:
        def arr(key: str) -> FloatArray:
            return np.asarray(data[key], dtype=np.float64)

        return cls(
            arr("predicted"),
            arr("s1"),
            arr("s2"),
            arr("hist_n"),
            arr("hist_p"),
            arr("hist_pp"),
            skipped_rows=int(data["skipped_rows"]),
            s1_boot=np.asarray(data.get("s1_boot", []), dtype=np.float64).reshape(
                -1, *np.shape(data["s1"])
            ),
        )


def class_indices(labels: npt.ArrayLike, classes: list[str], what: str) -> npt.NDArray[np.intp]:
    """Class indices of labels; -1 for a null or a label not among ``classes``."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise InputError(f"{what} must be 1-D, got shape {arr.shape}")
    out = np.full(len(arr), -1, dtype=np.intp)
    ok = ~null_mask(arr)
    names = label_strings(arr[ok])
    lookup = {c: i for i, c in enumerate(classes)}
    out[ok] = [lookup.get(str(v), -1) for v in names]
    return out


@dataclass
class CBPE:
    """A fitted CBPE estimator: the classes (sorted) and the reference's calibration."""

    classes: list[str]
    calibrator: Calibrator
    bins: int = DEFAULT_BINS
    _moved: FloatArray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def task(self) -> str:
        return "binary" if len(self.classes) == 2 else "multiclass"

    @classmethod
    def fit(
        cls,
        y_true: npt.ArrayLike,
        scores: npt.ArrayLike,
        *,
        classes: list[str] | None = None,
        bins: int = DEFAULT_BINS,
        seed: int = 0,
    ) -> CBPE:
        """Fit on the labelled reference. ``scores``: binary, the probability of the positive
        class (the last of ``classes``, sorted); multiclass, one column per class in order."""
        y = np.asarray(y_true)
        names = classes or sort_classes(label_strings(y[~null_mask(y)]))
        if len(names) < 2:
            raise InputError(f"CBPE needs at least 2 classes in the reference, got {names}")
        if isinstance(bins, bool) or bins < 1:
            raise InputError(f"bins must be an integer >= 1, got {bins!r}")
        idx = class_indices(y, names, "y_true")
        probs, ok = cls.raw_probabilities(np.asarray(scores, dtype=np.float64), names, len(y))
        ok &= idx >= 0
        return cls(names, Calibrator.fit(probs[ok], idx[ok], n_classes=len(names), seed=seed), bins)

    @staticmethod
    def raw_probabilities(s: FloatArray, classes: list[str], n: int) -> tuple[FloatArray, Any]:
        if s.shape[0] != n:
            raise InputError(f"scores have {s.shape[0]} rows, the labels {n}")
        finite = np.isfinite(s) if s.ndim == 1 else np.isfinite(s).all(1)
        probs = np.zeros((n, len(classes)))
        probs[finite] = class_probabilities(s[finite], classes, None)
        return probs, finite

    def state(self, scores: npt.ArrayLike, y_pred: npt.ArrayLike) -> CBPEState:
        """The mergeable state of a window's raw scores and predicted labels; rows with a
        missing score or a predicted label outside the classes are skipped (and counted)."""
        pred = class_indices(y_pred, self.classes, "y_pred")
        raw, ok = self.raw_probabilities(
            np.asarray(scores, dtype=np.float64), self.classes, len(pred)
        )
        ok &= pred >= 0
        raw, pred = raw[ok], pred[ok]
        p = self.calibrator.transform(raw)
        k, b = len(self.classes), self.bins
        onehot = (pred[:, None] == np.arange(k)[None, :]).astype(np.float64)
        bins = np.minimum((raw * b).astype(np.int64), b - 1)
        flat = (np.arange(k)[None, :] * b + bins).ravel()
        return CBPEState(
            predicted=onehot.sum(0),
            s1=onehot.T @ p,
            s2=np.einsum("ij,ik,il->jkl", onehot, p, p),
            hist_n=np.bincount(flat, minlength=k * b).reshape(k, b).astype(np.float64),
            hist_p=np.bincount(flat, weights=p.ravel(), minlength=k * b)
            .reshape(k, b)
            .astype(np.float64),
            hist_pp=np.bincount(flat, weights=(p * p).ravel(), minlength=k * b)
            .reshape(k, b)
            .astype(np.float64),
            skipped_rows=int((~ok).sum()),
            s1_boot=np.matmul(onehot.T[None], self.calibrator.transform_bootstrap(raw)),
        )

    def estimate(
        self,
        state: CBPEState,
        confidence: float = 0.95,
    ) -> dict[str, Any]:
        """The estimated metrics of a window's state, each a MetricValue with its interval."""
        z = normal_quantile(confidence)
        k = len(self.classes)
        metrics: dict[str, MetricValue] = {}
        if state.rows == 0:
            for name in (*CONFUSION_METRICS, "roc_auc"):
                metrics[name] = metric_value(None, reason="no rows with scores and a prediction")
        else:
            cov = np.einsum("jk,kl->jkl", state.s1, np.eye(k)) - state.s2
            values = confusion_metrics(state.s1)
            sds = _delta_sd(confusion_metrics, state.s1, cov)
            boot = confusion_metrics(state.s1_boot) if len(state.s1_boot) > 1 else {}
            for name in CONFUSION_METRICS:
                calib_var = float(np.var(boot[name], ddof=1)) if boot else 0.0
                v, half = float(values[name]), z * float(np.sqrt(sds[name] ** 2 + calib_var))
                lo, hi = max(v - half, 0.0), min(v + half, 1.0)
                metrics[name] = metric_value(v, lo, hi, "cbpe-delta")
            metrics["roc_auc"] = self._auc(state, z)
        return {
            "task": self.task,
            "method": "cbpe",
            "rows": state.rows,
            "skipped_rows": state.skipped_rows,
            "confidence": float(confidence),
            "classes": list(self.classes),
            "positive_class": self.classes[1] if k == 2 else None,
            # [true][predicted], scikit-learn's orientation
            "expected_confusion_matrix": state.s1.T.tolist(),
            "metrics": metrics,
        }

    def _auc(self, state: CBPEState, z: float) -> MetricValue:
        sel = [1] if len(self.classes) == 2 else list(range(len(self.classes)))
        n, pos = state.hist_n[sel], np.minimum(state.hist_p[sel], state.hist_n[sel])
        var_pos = np.maximum(pos - state.hist_pp[sel], 0.0)  # sum of p (1 - p) per bin
        auc = auc_from_hist(pos, n - pos)[0]
        value = float(auc.mean())
        # the AUC's derivative in each bin's count of positives X_b (its negatives n_b - X_b):
        # W = sum_b X_b (negatives below b + negatives in b / 2), AUC = W / (P N)
        neg = n - pos
        p_tot, n_tot = pos.sum(-1, keepdims=True), neg.sum(-1, keepdims=True)
        below = np.cumsum(neg, axis=-1) - neg
        above = p_tot - np.cumsum(pos, axis=-1)
        d_w = below + 0.5 * neg - 0.5 * pos - above
        g = safe_div(d_w - auc[:, None] * (n_tot - p_tot), p_tot * n_tot)
        sd = np.sqrt((g**2 * var_pos).sum(-1))
        # the calibration's error: each refit moves a bin's positives by its row count times
        # the refit's change of the map at the bin's centre
        moved = self._moved_maps()
        if len(moved) > 1:
            pos_b = np.clip(pos[None] + n[None] * moved, 0.0, n[None])
            auc_b = auc_from_hist(pos_b, n[None] - pos_b)[0]  # (B, classes)
            sd = np.sqrt(sd**2 + np.var(auc_b, axis=0, ddof=1))
        # classes averaged by their standard deviations: the per-class AUCs move together (a
        # row that is not of its likely class lowers both), and the mean of the per-class
        # deviations bounds the deviation of the mean however they correlate
        half = z * float(sd.mean())
        return metric_value(value, max(value - half, 0.0), min(value + half, 1.0), "cbpe-delta")

    def _moved_maps(self) -> FloatArray:
        """(B, classes, bins): each bootstrap refit's map minus the fitted one at the bins'
        centres (computed once per estimator)."""
        if self._moved is None:
            boot = self.calibrator.bootstrap
            centre = (np.arange(self.bins) + 0.5) / self.bins
            main = np.array([np.interp(centre, *m) for m in self.calibrator.maps])
            self._moved = (
                np.array([[np.interp(centre, *m) for m in maps] for maps in boot]) - main
                if len(boot) > 1
                else np.zeros((0, 0, 0))
            )
        return self._moved

    def to_dict(self) -> dict[str, Any]:
        return {"classes": self.classes, "bins": self.bins, "calibrator": self.calibrator.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CBPE:
        calibrator = Calibrator.from_dict(data["calibrator"])
        return cls([str(c) for c in data["classes"]], calibrator, int(data["bins"]))
