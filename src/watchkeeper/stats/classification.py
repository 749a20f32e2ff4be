"""Classification performance from a mergeable aggregate.

:class:`ClassificationAggregate` keeps only counts and exact sums, so one aggregate per
time bucket (or per Spark partition) can be merged on read and every metric recomputed
from the merged aggregate alone:

* the K x K confusion matrix (rows: true class, columns: predicted class);
* with scores, per class a histogram of that class's score on ``score_bins`` fixed bins
  over [0, 1], split into rows whose true class is that class ("positives") and the rest
  (one-vs-rest), plus the exact sums of the per-row log loss and of its square.

Metric shape
------------
Every headline metric is a :class:`MetricValue` dict with always the same keys::

    {"value": float | None, "ci_low": float | None, "ci_high": float | None,
     "ci_method": str | None, "reason": str | None}

``value`` is ``None`` when the metric is undefined for the window and ``reason`` says why
(no rows, only one class present in y_true, no scores given, ...). ``reason`` may also carry
a caveat next to a defined value. Zero divisions follow scikit-learn's ``zero_division=0``:
precision of a class never predicted, recall of a class absent from y_true and F1 of a class
absent from both are 0.0, with ``reason`` saying so and no interval.

Intervals (two-sided, level ``confidence``):

* ``"wilson"`` -- accuracy, per-class precision / recall, micro averages; average precision
  of one class as a proportion of its positives (the binomial interval of Boyd et al. 2013);
* ``"bootstrap"`` -- per-class F1 and macro / weighted averages: a parametric, seeded bootstrap
  drawing whole confusion matrices from Multinomial(n, observed cell proportions), percentile
  interval;
* ``"hanley-mcneil"`` -- ROC AUC (multiclass macro: per-class variances, classes treated as
  independent);
* ``"normal"`` -- log loss, from the exact sums of the loss and its square; multiclass macro
  average precision (per-class binomial variances, classes treated as independent).

Bootstrap percentile intervals are widened to include the point value when they miss it.

Binned scores
-------------
ROC AUC and average precision are computed from the histograms. Pairs of a positive and a
negative row in different bins are ordered exactly; pairs sharing a bin count as half (a tie),
so ``|binned AUC - exact AUC| <= 0.5 * (pairs sharing a bin) / (all pairs)``, returned as
``roc_auc_error_bound``. For average precision each bin is one threshold; the exact value of a
bin's contribution lies between the "all its negatives first" and "all its positives first"
orderings, and the sum of the per-bin worst cases is returned as ``pr_auc_error_bound``
(multiclass: bounds are averaged like the values). When each bin holds at most one distinct
score, both binned values equal scikit-learn's exactly. Log loss uses exact sums
(``-log(max(p_true, 1e-15))``), so it matches scikit-learn except for probabilities below
1e-15 (scikit-learn clips at machine epsilon).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self, TypedDict

import numpy as np
import numpy.typing as npt
from scipy.special import digamma, ndtri

from watchkeeper.errors import InputError, ProfileMismatchError

__all__ = [
    "DEFAULT_SCORE_BINS",
    "LOG_LOSS_EPS",
    "ClassificationAggregate",
    "MetricValue",
    "metric_value",
    "normal_quantile",
    "wilson_interval",
]

LOG_LOSS_EPS = 1e-15
DEFAULT_SCORE_BINS = 1000
_FORMAT_VERSION = 1
_BOOTSTRAP_CELLS = 4_000_000  # multinomial cells drawn per chunk (bounds memory)
_PROB_SUM_TOL = 1e-5

Labels = npt.ArrayLike | Sequence[Any]  # lists may hold None
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class MetricValue(TypedDict):
    """One metric with its interval; see the module docstring."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    ci_method: str | None
    reason: str | None


def metric_value(
    value: float | None,
    ci_low: float | None = None,
    ci_high: float | None = None,
    ci_method: str | None = None,
    reason: str | None = None,
) -> MetricValue:
    """Build a :class:`MetricValue`; an interval is widened to contain ``value``."""
    if value is None or ci_low is None or ci_high is None:
        return {
            "value": None if value is None else float(value),
            "ci_low": None,
            "ci_high": None,
            "ci_method": None,
            "reason": reason,
        }
    v = float(value)
    return {
        "value": v,
        "ci_low": min(float(ci_low), v),
        "ci_high": max(float(ci_high), v),
        "ci_method": ci_method,
        "reason": reason,
    }


def normal_quantile(confidence: float) -> float:
    """The two-sided standard normal quantile z for ``confidence`` in (0, 1)."""
    if isinstance(confidence, bool) or not 0.0 < float(confidence) < 1.0:
        raise InputError(f"confidence must be a number in (0, 1), got {confidence!r}")
    return float(ndtri(0.5 + float(confidence) / 2.0))


def wilson_interval(
    successes: npt.ArrayLike, trials: npt.ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for a binomial proportion (vectorised; NaN where trials == 0).

    Examples
    --------
    >>> lo, hi = wilson_interval(8, 10)
    >>> round(float(lo), 3), round(float(hi), 3)
    (0.49, 0.943)
    """
    z = normal_quantile(confidence)
    s = np.asarray(successes, dtype=np.float64)
    t = np.asarray(trials, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = s / t
        denom = 1.0 + z * z / t
        centre = (p + z * z / (2.0 * t)) / denom
        half = z * np.sqrt(p * (1.0 - p) / t + z * z / (4.0 * t * t)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def _safe_div(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """a / b with 0.0 where b == 0 (scikit-learn's zero_division=0)."""
    num = np.asarray(a, dtype=np.float64)
    den = np.asarray(b, dtype=np.float64)
    num, den = np.broadcast_arrays(num, den)
    return np.divide(num, den, out=np.zeros(num.shape), where=den != 0)


# ----------------------------------------------------------------------------- labels


def _as_1d(x: Any, name: str) -> npt.NDArray[Any]:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array, got shape {arr.shape}")
    return arr


def null_mask(arr: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """True where a label is None or NaN."""
    if arr.dtype.kind == "f":
        return np.asarray(np.isnan(arr), dtype=np.bool_)
    if arr.dtype.kind == "O":
        none = np.equal(arr, np.asarray(None, dtype=object))
        return np.asarray(none | np.not_equal(arr, arr), dtype=np.bool_)
    return np.zeros(arr.shape, dtype=bool)


def label_strings(arr: npt.NDArray[Any]) -> npt.NDArray[np.str_]:
    """Labels (no nulls) as strings; integral floats are written as integers (1.0 -> "1")."""
    if arr.dtype.kind == "O" and arr.size:
        try:
            inferred = np.array(arr.tolist())
        except ValueError:
            inferred = arr
        if inferred.ndim == 1 and inferred.dtype.kind != "O":
            arr = inferred
    out = arr.astype(str)
    if arr.dtype.kind == "f":
        integral = np.isfinite(arr) & (np.abs(arr) < 2.0**53)
        integral[integral] = arr[integral] == np.floor(arr[integral])
        out = out.astype(object)
        out[integral] = arr[integral].astype(np.int64).astype(str)
        out = out.astype(str)
    return out


def _factorize(arr: npt.NDArray[Any]) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.intp]]:
    """Unique label strings and each row's index into them (strings made once per value)."""
    if arr.dtype.kind == "O":
        arr = label_strings(arr)
    uniq, inverse = np.unique(arr, return_inverse=True)
    return label_strings(uniq), np.asarray(inverse, dtype=np.intp).reshape(-1)


def sort_classes(labels: npt.ArrayLike) -> list[str]:
    """Unique class names, numerically sorted when all parse as numbers, else lexicographic."""
    uniq = [str(c) for c in np.unique(np.asarray(labels, dtype=str))]
    try:
        keys = [float(c) for c in uniq]
    except ValueError:
        return uniq
    if any(math.isnan(k) for k in keys):
        return uniq
    return [c for _, c in sorted(zip(keys, uniq, strict=True))]


def _encode(labels: npt.NDArray[np.str_], classes: list[str], name: str) -> npt.NDArray[np.intp]:
    """Class index of each label; InputError naming the labels not in ``classes``."""
    if not classes:
        if labels.size:
            raise InputError(f"{name} has labels not in classes: {sorted(set(labels[:5]))}")
        return np.zeros(0, dtype=np.intp)
    cls = np.asarray(classes, dtype=str)
    order = np.argsort(cls, kind="stable")
    pos = np.minimum(np.searchsorted(cls[order], labels), len(cls) - 1)
    found = cls[order][pos] == labels
    if not found.all():
        unseen = [str(u) for u in np.unique(labels[~found])[:5]]
        raise InputError(f"{name} has labels not in classes: {unseen}")
    return np.asarray(order[pos], dtype=np.intp)


# ----------------------------------------------------------------------------- curves


def _auc_from_hist(pos: FloatArray, neg: FloatArray) -> tuple[FloatArray, FloatArray]:
    """ROC AUC and its binning error bound along the last axis (ties within a bin = 1/2)."""
    pairs = pos.sum(-1) * neg.sum(-1)
    below = np.cumsum(neg, axis=-1) - neg
    wins = (pos * (below + 0.5 * neg)).sum(-1)
    return _safe_div(wins, pairs), _safe_div(0.5 * (pos * neg).sum(-1), pairs)


def _ap_from_hist(pos: FloatArray, neg: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Average precision (one threshold per bin) and its error bound, along the last axis."""
    p, q = pos[..., ::-1], neg[..., ::-1]  # descending thresholds
    tp, fp = np.cumsum(p, axis=-1), np.cumsum(q, axis=-1)
    tp0, fp0 = tp - p, fp - q
    binned = p * _safe_div(tp, tp + fp)
    hi = p * _safe_div(tp, tp + fp0)  # all the bin's positives ranked first
    c = tp0 + fp
    lo = p - fp * (digamma(c + p + 1.0) - digamma(c + 1.0))  # all its negatives first
    n_pos = tp[..., -1]
    err = np.maximum(hi - binned, binned - lo).sum(-1)
    return _safe_div(binned.sum(-1), n_pos), _safe_div(err, n_pos)


def _prf(tp: FloatArray, pred: FloatArray, true: FloatArray) -> tuple[FloatArray, ...]:
    """Per-class precision, recall, F1 (zero_division=0) and macro / weighted averages."""
    precision, recall = _safe_div(tp, pred), _safe_div(tp, true)
    f1 = _safe_div(2.0 * tp, pred + true)
    weights = _safe_div(true, true.sum(-1, keepdims=True))
    stacked = np.stack([precision, recall, f1])
    return precision, recall, f1, stacked.mean(-1), (stacked * weights).sum(-1)


# ----------------------------------------------------------------------------- aggregate


@dataclass(frozen=True, eq=False)
class ClassificationAggregate:
    """Mergeable classification aggregate; build with :meth:`from_arrays` or :meth:`from_dict`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200)
    >>> p = np.clip(0.3 * y + 0.7 * rng.random(200), 0, 1)
    >>> a = ClassificationAggregate.from_arrays(y[:120], p[:120] > 0.5, p[:120], classes=[0, 1])
    >>> b = ClassificationAggregate.from_arrays(y[120:], p[120:] > 0.5, p[120:], classes=[0, 1])
    >>> m = a.merge(b).metrics()
    >>> m["n"], m["task"], m["classes"]
    (200, 'binary', ['0', '1'])
    >>> whole = ClassificationAggregate.from_arrays(y, p > 0.5, p, classes=[0, 1]).metrics()
    >>> m["accuracy"] == whole["accuracy"] and m["roc_auc"] == whole["roc_auc"]
    True
    """

    classes: tuple[str, ...]
    confusion: IntArray = field(repr=False)
    skipped_rows: int = 0
    score_bins: int = DEFAULT_SCORE_BINS
    pos_label: str | None = None
    score_hist: IntArray | None = field(default=None, repr=False)  # (K, 2, bins): [neg, pos]
    log_loss_sum: float = 0.0
    log_loss_sq_sum: float = 0.0

    def __post_init__(self) -> None:
        k = len(self.classes)
        if len(set(self.classes)) != k or sort_classes(list(self.classes)) != list(self.classes):
            raise InputError(f"classes must be unique and sorted, got {list(self.classes)}")
        if self.confusion.shape != (k, k) or (self.confusion < 0).any():
            raise InputError(f"confusion must be a non-negative {k}x{k} count matrix")
        if self.skipped_rows < 0:
            raise InputError(f"skipped_rows must be >= 0, got {self.skipped_rows}")
        if isinstance(self.score_bins, bool) or self.score_bins < 1:
            raise InputError(f"score_bins must be an integer >= 1, got {self.score_bins!r}")
        if self.pos_label is not None and self.pos_label not in self.classes:
            raise InputError(f"pos_label {self.pos_label!r} is not one of classes")
        if self.score_hist is not None:
            h = self.score_hist
            if h.shape != (k, 2, self.score_bins) or (h < 0).any():
                raise InputError(f"score_hist must be a non-negative {k}x2x{self.score_bins} array")
            if (h[:, 1].sum(-1) != self.confusion.sum(1)).any() or (h.sum((1, 2)) != self.n).any():
                raise InputError("score_hist counts do not match the confusion matrix")
            if not (np.isfinite(self.log_loss_sum) and np.isfinite(self.log_loss_sq_sum)):
                raise InputError("log loss sums must be finite")
            h.flags.writeable = False
        self.confusion.flags.writeable = False

    @property
    def n(self) -> int:
        """Number of rows counted (skipped rows excluded)."""
        return int(self.confusion.sum())

    @property
    def positive_class(self) -> str | None:
        """The positive class of a binary task: ``pos_label``, else the last class."""
        if len(self.classes) > 2 or not self.classes:
            return None
        return self.pos_label if self.pos_label is not None else self.classes[-1]

    # -------------------------------------------------------------------- building

    @classmethod
    def from_arrays(
        cls,
        y_true: Labels,
        y_pred: Labels,
        scores: npt.ArrayLike | None = None,
        classes: Labels | None = None,
        score_bins: int = DEFAULT_SCORE_BINS,
        *,
        pos_label: Any = None,
    ) -> Self:
        """Aggregate one batch of labels (and optionally scores).

        Labels may be strings, ints or bools and are compared as strings (see
        :func:`label_strings`; a bool array next to a numeric one reads as 0 / 1); rows where
        y_true, y_pred or a score is None / NaN are skipped and counted in ``skipped_rows``.
        ``classes`` fixes the class list (pass it when buckets must merge with scores, or when
        a window may miss a class); labels outside it raise :class:`InputError`. Classes are
        always sorted (numerically when all are numbers). ``scores``: binary -- 1-D
        P(positive class) or 2-D (n, 2); multiclass -- 2-D (n, K) probabilities in sorted
        class order, rows summing to 1.
        The positive class is ``pos_label`` if given, else the last sorted class.
        """
        t, p = _as_1d(y_true, "y_true"), _as_1d(y_pred, "y_pred")
        if len(t) != len(p):
            raise InputError(f"y_true and y_pred differ in length: {len(t)} != {len(p)}")
        c_in = None if classes is None else _as_1d(classes, "classes")
        pos_in = None if pos_label is None else np.asarray([pos_label])
        if any(a.dtype.kind in "iuf" for a in (t, p, c_in, pos_in) if a is not None):
            t, p = (a.astype(np.int64) if a.dtype.kind == "b" else a for a in (t, p))
            c_in, pos_in = (
                a if a is None or a.dtype.kind != "b" else a.astype(np.int64)
                for a in (c_in, pos_in)
            )
        if isinstance(score_bins, bool) or not isinstance(score_bins, int | np.integer):
            raise InputError(f"score_bins must be an integer >= 1, got {score_bins!r}")
        keep = ~(null_mask(t) | null_mask(p))
        s: FloatArray | None = None
        if scores is not None:
            try:
                s = np.asarray(scores, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InputError(f"scores must be numeric probabilities: {exc}") from None
            if s.ndim not in (1, 2) or s.shape[0] != len(t):
                raise InputError(
                    f"scores must have shape ({len(t)},) or ({len(t)}, K), got {s.shape}"
                )
            keep &= ~(np.isnan(s).any(axis=1) if s.ndim == 2 else np.isnan(s))
            s = s[keep]
            if s.size and not (np.isfinite(s).all() and s.min() >= 0.0 and s.max() <= 1.0):
                raise InputError("scores must be probabilities in [0, 1]")
        (t_str, t_codes), (p_str, p_codes) = _factorize(t[keep]), _factorize(p[keep])
        pos = None if pos_in is None else str(label_strings(pos_in)[0])
        if c_in is None:
            seen = np.concatenate([t_str, p_str, np.asarray([] if pos is None else [pos])])
            class_list = sort_classes(seen)
        else:
            if null_mask(c_in).any():
                raise InputError("classes must not contain None / NaN")
            c_str = label_strings(c_in)
            if len(np.unique(c_str)) != len(c_str):
                raise InputError(f"classes has duplicates: {[str(c) for c in c_str]}")
            class_list = sort_classes(c_str)
            if pos is not None and pos not in class_list:
                raise InputError(f"pos_label {pos!r} is not one of classes {class_list}")
        ti = _encode(t_str, class_list, "y_true")[t_codes]
        pi = _encode(p_str, class_list, "y_pred")[p_codes]
        k = len(class_list)
        confusion = np.bincount(ti * k + pi, minlength=k * k).reshape(k, k).astype(np.int64)
        hist, ll_sum, ll_sq = None, 0.0, 0.0
        if s is not None:
            probs = _class_probabilities(s, class_list, pos)
            bins = np.minimum((probs * score_bins).astype(np.int64), score_bins - 1)
            is_pos = ti[:, None] == np.arange(k)[None, :]
            flat = (np.arange(k)[None, :] * 2 + is_pos) * score_bins + bins
            hist = np.bincount(flat.ravel(), minlength=k * 2 * score_bins)
            hist = hist.reshape(k, 2, score_bins).astype(np.int64)
            loss = -np.log(np.maximum(probs[np.arange(len(ti)), ti], LOG_LOSS_EPS))
            ll_sum, ll_sq = float(loss.sum()), float((loss * loss).sum())
        return cls(
            tuple(class_list),
            confusion,
            int((~keep).sum()),
            int(score_bins),
            pos,
            hist,
            ll_sum,
            ll_sq,
        )

    # -------------------------------------------------------------------- merging

    def merge(self, other: ClassificationAggregate) -> Self:
        """Aggregate of both inputs' rows; neither input is modified.

        Class lists are unioned exactly when no non-empty side has scores for a shorter
        class list; otherwise (and when ``score_bins`` / ``pos_label`` differ, or only one
        non-empty side has scores) :class:`~watchkeeper.errors.ProfileMismatchError` is raised.
        """
        if not isinstance(other, ClassificationAggregate):
            raise InputError(f"other must be a ClassificationAggregate, got {type(other).__name__}")
        if self.score_bins != other.score_bins:
            raise ProfileMismatchError(
                f"score_bins differ: {self.score_bins} != {other.score_bins}"
            )
        if self.pos_label != other.pos_label:
            raise ProfileMismatchError(
                f"pos_label differs: {self.pos_label!r} != {other.pos_label!r}"
            )
        sides = (self, other)
        lacking = [a for a in sides if a.score_hist is None and a.n > 0]
        scored = [a for a in sides if a.score_hist is not None]
        if lacking and any(a.n > 0 for a in scored):
            raise ProfileMismatchError("cannot merge an aggregate with scores and one without")
        keep_scores = bool(scored) and not lacking
        classes = sort_classes(list(self.classes) + list(other.classes))
        k = len(classes)
        confusion = np.zeros((k, k), dtype=np.int64)
        hist = np.zeros((k, 2, self.score_bins), dtype=np.int64) if keep_scores else None
        for a in sides:
            idx = np.asarray([classes.index(c) for c in a.classes], dtype=np.intp)
            confusion[np.ix_(idx, idx)] += a.confusion
            if hist is not None and a.score_hist is not None:
                if a.n > 0 and len(a.classes) != k:
                    raise ProfileMismatchError(
                        f"class lists differ ({list(self.classes)} vs {list(other.classes)}) "
                        "and scores cannot be re-expressed; pass classes= to from_arrays"
                    )
                hist[idx] += a.score_hist  # an empty side may gain classes: all zero
        return type(self)(
            tuple(classes),
            confusion,
            self.skipped_rows + other.skipped_rows,
            self.score_bins,
            self.pos_label,
            hist,
            self.log_loss_sum + other.log_loss_sum,
            self.log_loss_sq_sum + other.log_loss_sq_sum,
        )

    # -------------------------------------------------------------------- serialisation

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; histograms are stored sparsely (flat index, count)."""
        scores = None
        if self.score_hist is not None:
            flat = self.score_hist.ravel()
            nz = np.flatnonzero(flat)
            scores = {
                "hist_index": nz.tolist(),
                "hist_count": flat[nz].tolist(),
                "log_loss_sum": self.log_loss_sum,
                "log_loss_sq_sum": self.log_loss_sq_sum,
            }
        return {
            "kind": "classification",
            "version": _FORMAT_VERSION,
            "classes": list(self.classes),
            "pos_label": self.pos_label,
            "score_bins": self.score_bins,
            "skipped_rows": self.skipped_rows,
            "confusion_matrix": self.confusion.tolist(),
            "scores": scores,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`; :class:`InputError` on a malformed dict."""
        if not isinstance(d, dict) or d.get("kind") != "classification":
            raise InputError("d must be a dict with kind == 'classification'")
        if d.get("version") != _FORMAT_VERSION:
            raise InputError(f"unsupported classification aggregate version {d.get('version')!r}")
        try:
            classes = tuple(str(c) for c in d["classes"])
            k, bins = len(classes), _as_int(d["score_bins"], "score_bins")
            confusion = _int_array(d["confusion_matrix"], "confusion_matrix").reshape(k, k)
            hist: IntArray | None = None
            ll_sum, ll_sq = 0.0, 0.0
            sc = d["scores"]
            if sc is not None:
                index = _int_array(sc["hist_index"], "scores.hist_index")
                count = _int_array(sc["hist_count"], "scores.hist_count")
                if index.shape != count.shape or ((index < 0) | (index >= k * 2 * bins)).any():
                    raise InputError("scores.hist_index / hist_count are inconsistent")
                flat = np.zeros(k * 2 * bins, dtype=np.int64)
                np.add.at(flat, index, count)
                hist = flat.reshape(k, 2, bins)
                ll_sum, ll_sq = float(sc["log_loss_sum"]), float(sc["log_loss_sq_sum"])
            pos = d["pos_label"]
            return cls(
                classes,
                confusion,
                _as_int(d["skipped_rows"], "skipped_rows"),
                bins,
                None if pos is None else str(pos),
                hist,
                ll_sum,
                ll_sq,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"malformed classification aggregate dict: {exc!r}") from None

    # -------------------------------------------------------------------- metrics

    def metrics(
        self, confidence: float = 0.95, *, n_bootstrap: int = 1000, seed: int = 0
    ) -> dict[str, Any]:
        """All metrics with intervals; see the module docstring for the value shape.

        Keys: ``task`` ("binary" if at most 2 classes, else "multiclass"), ``n``,
        ``skipped_rows``, ``confidence``, ``classes``, ``positive_class`` (binary, else None),
        ``confusion_matrix`` (nested lists, rows = true class), ``accuracy``, ``precision`` /
        ``recall`` / ``f1`` (binary: positive class; multiclass: macro), ``per_class``
        ({class: {support, predicted, precision, recall, f1}} -- plus ``roc_auc`` and
        ``pr_auc`` for multiclass with scores), ``macro`` / ``micro`` / ``weighted``
        ({precision, recall, f1}), ``roc_auc``, ``roc_auc_error_bound``, ``pr_auc``
        (average precision), ``pr_auc_error_bound``, ``log_loss``. ``n_bootstrap=0``
        disables the bootstrap intervals; ``seed`` makes them reproducible.
        """
        normal_quantile(confidence)  # validates confidence
        if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 0:
            raise InputError(f"n_bootstrap must be an integer >= 0, got {n_bootstrap!r}")
        k, n, classes = len(self.classes), self.n, list(self.classes)
        binary = k <= 2
        out: dict[str, Any] = {
            "task": "binary" if binary else "multiclass",
            "n": n,
            "skipped_rows": self.skipped_rows,
            "confidence": float(confidence),
            "classes": classes,
            "positive_class": self.positive_class,
            "confusion_matrix": self.confusion.tolist(),
        }
        if n == 0:
            why = "no rows in the window" + (
                f" ({self.skipped_rows} skipped for nulls)" if self.skipped_rows else ""
            )
            names = ["precision", "recall", "f1"]
            scored = self.score_hist is not None and not binary
            cls_names = names + (["roc_auc", "pr_auc"] if scored else [])
            out.update({m: metric_value(None, reason=why) for m in ["accuracy", *names]})
            for avg in ("macro", "micro", "weighted"):
                out[avg] = {m: metric_value(None, reason=why) for m in names}
            for m in ("roc_auc", "pr_auc", "log_loss"):
                out[m] = metric_value(None, reason=why)
            out.update(roc_auc_error_bound=None, pr_auc_error_bound=None)
            out["per_class"] = {
                c: {"support": 0, "predicted": 0}
                | {m: metric_value(None, reason=why) for m in cls_names}
                for c in classes
            }
            return out
        c = self.confusion.astype(np.float64)
        tp, pred, true = np.diag(c), c.sum(0), c.sum(1)
        prec, rec, f1, macro, weighted = _prf(tp, pred, true)
        reps = self._bootstrap(n_bootstrap, seed) if n_bootstrap else None
        alpha = (1.0 - float(confidence)) / 2.0

        def boot(
            point: float, samples: FloatArray | None, reason: str | None = None
        ) -> MetricValue:
            if samples is None:
                return metric_value(point, reason=reason)
            lo, hi = np.quantile(samples, [alpha, 1.0 - alpha])
            return metric_value(point, float(lo), float(hi), "bootstrap", reason)

        def wilson(
            point: float, succ: float, trials: float, reason: str | None = None
        ) -> MetricValue:
            if trials == 0:
                return metric_value(point, reason=reason)
            lo, hi = wilson_interval(succ, trials, confidence)
            return metric_value(point, float(lo), float(hi), "wilson", reason)

        zero = "0.0 by the zero_division=0 convention (as scikit-learn)"
        per_class: dict[str, dict[str, Any]] = {}
        for i, name in enumerate(classes):
            per_class[name] = {
                "support": int(true[i]),
                "predicted": int(pred[i]),
                "precision": wilson(
                    prec[i], tp[i], pred[i], None if pred[i] else f"class never predicted; {zero}"
                ),
                "recall": wilson(
                    rec[i], tp[i], true[i], None if true[i] else f"class absent from y_true; {zero}"
                ),
                "f1": boot(
                    f1[i],
                    None if pred[i] + true[i] == 0 or reps is None else reps[2][:, i],
                    None if pred[i] + true[i] else f"class absent from both; {zero}",
                ),
            }
        n_zero = int(((pred == 0) | (true == 0)).sum())
        avg_reason = f"{n_zero} of {k} classes contribute {zero}" if n_zero else None
        acc = wilson(float(tp.sum() / n), tp.sum(), n)
        out["accuracy"] = acc
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
        head = per_class[self.positive_class] if binary and self.positive_class else out["macro"]
        out.update({m: dict(head[m]) for m in names})
        out["per_class"] = per_class
        out.update(self._score_metrics(confidence, per_class))
        return out

    def _bootstrap(self, n_boot: int, seed: int) -> tuple[FloatArray, ...]:
        """Replicates of _prf over multinomial redraws of the confusion matrix."""
        rng = np.random.default_rng(seed)
        k, n = len(self.classes), self.n
        pvals = (self.confusion / n).ravel()
        chunk = max(1, _BOOTSTRAP_CELLS // (k * k))
        parts = []
        for start in range(0, n_boot, chunk):
            draws = rng.multinomial(n, pvals, size=min(chunk, n_boot - start))
            draws = draws.reshape(-1, k, k).astype(np.float64)
            parts.append(_prf(np.diagonal(draws, axis1=1, axis2=2), draws.sum(1), draws.sum(2)))
        # per-class arrays are (B, K); averages are (3, B) -> transpose to (B, 3)
        return tuple(np.concatenate([p[j] if j < 3 else p[j].T for p in parts]) for j in range(5))

    def _score_metrics(
        self, confidence: float, per_class: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        if self.score_hist is None:
            none = metric_value(None, reason="no scores were given")
            return {
                "roc_auc": none,
                "roc_auc_error_bound": None,
                "pr_auc": none,
                "pr_auc_error_bound": None,
                "log_loss": none,
            }
        n, z = self.n, normal_quantile(confidence)
        mean = self.log_loss_sum / n
        var = max(self.log_loss_sq_sum / n - mean * mean, 0.0) * n / max(n - 1, 1)
        half = z * np.sqrt(var / n)
        log_loss = (
            metric_value(mean, max(mean - half, 0.0), mean + half, "normal")
            if n > 1
            else metric_value(mean, reason="interval needs at least 2 rows")
        )
        binary = len(self.classes) <= 2
        idx = (
            [self.classes.index(self.positive_class)]
            if binary and self.positive_class
            else list(range(len(self.classes)))
        )
        hist = self.score_hist[idx].astype(np.float64)
        neg, pos = hist[:, 0], hist[:, 1]
        n_pos, n_neg = pos.sum(-1), neg.sum(-1)
        auc, auc_err = _auc_from_hist(pos, neg)
        ap, ap_err = _ap_from_hist(pos, neg)
        q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
        auc_var = _safe_div(
            auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc),
            n_pos * n_neg,
        )
        auc_ok, ap_ok = (n_pos > 0) & (n_neg > 0), n_pos > 0
        names = [self.classes[i] for i in idx]

        def auc_metric(sel: npt.NDArray[np.bool_], reason: str | None) -> MetricValue:
            value = float(auc[sel].mean())
            se = float(np.sqrt(auc_var[sel].sum())) / int(sel.sum())
            return metric_value(
                value, max(value - z * se, 0.0), min(value + z * se, 1.0), "hanley-mcneil", reason
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
        if not binary:
            for j, nm in enumerate(names):
                sel = np.arange(len(idx)) == j
                per_class[nm]["roc_auc"] = (
                    auc_metric(sel, None)
                    if auc_ok[j]
                    else metric_value(None, reason=one_class + " (one-vs-rest)")
                )
                per_class[nm]["pr_auc"] = (
                    ap_metric(sel, None)
                    if ap_ok[j]
                    else metric_value(None, reason="class absent from y_true")
                )
        no_pos = f"no rows of the positive class {self.positive_class!r} in y_true"
        return {
            "roc_auc": auc_metric(auc_ok, partial(auc_ok, "one-vs-rest undefined for"))
            if auc_ok.any()
            else metric_value(None, reason=one_class),
            "roc_auc_error_bound": float(auc_err[auc_ok].mean()) if auc_ok.any() else None,
            "pr_auc": ap_metric(ap_ok, partial(ap_ok, "absent from y_true"))
            if ap_ok.any()
            else metric_value(None, reason=no_pos),
            "pr_auc_error_bound": float(ap_err[ap_ok].mean()) if ap_ok.any() else None,
            "log_loss": log_loss,
        }


def _as_int(x: Any, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int | np.integer):
        raise InputError(f"{name} must be an integer, got {x!r}")
    return int(x)


def _int_array(x: Any, name: str) -> IntArray:
    arr = np.asarray(x)
    if arr.size and arr.dtype.kind not in "iu":
        raise InputError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _class_probabilities(s: FloatArray, classes: list[str], pos: str | None) -> FloatArray:
    """Scores as an (m, K) probability matrix in class order."""
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
