"""Classification performance from a mergeable aggregate.

:class:`ClassificationAggregate` keeps only counts and exact sums, so one aggregate per
time bucket (or per Spark partition) can be merged on read and every metric recomputed
from the merged aggregate alone:

* the K x K confusion matrix (rows: true class, columns: predicted class);
* with scores, per class a histogram of that class's score on ``score_bins`` fixed bins
  over [0, 1], split into rows whose true class is that class ("positives") and the rest
  (one-vs-rest), plus the exact sums of the per-row log loss and of its square.

Metrics are computed from the merged aggregate by
:mod:`~watchkeeper.stats.confusion` (accuracy, precision, recall, F1: ``"wilson"`` and seeded
``"bootstrap"`` intervals, scikit-learn's ``zero_division=0``) and
:mod:`~watchkeeper.stats.score_histograms` (ROC AUC and average precision from the binned
scores, with binning error bounds: ``"delong"``, ``"wilson"`` and ``"normal"``
intervals). Log loss uses the exact sums (``-log(max(p_true, 1e-15))``; ``"normal"`` interval
from the sums of the loss and its square), so it matches scikit-learn except for probabilities
below 1e-15 (scikit-learn clips at machine epsilon). Every metric value has the
:class:`~watchkeeper.stats.intervals.MetricValue` shape documented in
:mod:`watchkeeper.stats.intervals` (``value``, ``ci_low``, ``ci_high``, ``ci_method``,
``reason``; ``value`` is ``None`` with a ``reason`` when undefined).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InputError, ProfileMismatchError
from watchkeeper.stats.classification_format import aggregate_from_dict, aggregate_to_dict
from watchkeeper.stats.confusion import confusion_metrics
from watchkeeper.stats.intervals import MetricValue, metric_value, normal_quantile, wilson_interval
from watchkeeper.stats.labels import (
    Labels,
    as_1d,
    encode_labels,
    factorize,
    label_strings,
    null_mask,
    resolve_classes,
    sort_classes,
)
from watchkeeper.stats.score_histograms import class_probabilities, ranking_metrics, score_histogram

__all__ = [
    "DEFAULT_SCORE_BINS",
    "LOG_LOSS_EPS",
    "ClassificationAggregate",
    "MetricValue",  # re-exported from watchkeeper.stats.intervals
    "metric_value",
    "normal_quantile",
    "wilson_interval",
]

LOG_LOSS_EPS = 1e-15
DEFAULT_SCORE_BINS = 1000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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
        :func:`~watchkeeper.stats.labels.label_strings`; a bool array next to a numeric one
        reads as 0 / 1); rows where y_true, y_pred or a score is None / NaN are skipped and
        counted in ``skipped_rows``.
        ``classes`` fixes the class list (pass it when buckets must merge with scores, or when
        a window may miss a class); labels outside it raise :class:`InputError`. Classes are
        always sorted (numerically when all are numbers). ``scores``: binary -- 1-D
        P(positive class) or 2-D (n, 2); multiclass -- 2-D (n, K) probabilities in sorted
        class order, rows summing to 1.
        The positive class is ``pos_label`` if given, else the last sorted class.
        """
        t, p = as_1d(y_true, "y_true"), as_1d(y_pred, "y_pred")
        if len(t) != len(p):
            raise InputError(f"y_true and y_pred differ in length: {len(t)} != {len(p)}")
        c_in = None if classes is None else as_1d(classes, "classes")
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
        (t_str, t_codes), (p_str, p_codes) = factorize(t[keep]), factorize(p[keep])
        pos = None if pos_in is None else str(label_strings(pos_in)[0])
        class_list = resolve_classes([t_str, p_str], c_in, pos)
        ti = encode_labels(t_str, class_list, "y_true")[t_codes]
        pi = encode_labels(p_str, class_list, "y_pred")[p_codes]
        k = len(class_list)
        confusion = np.bincount(ti * k + pi, minlength=k * k).reshape(k, k).astype(np.int64)
        hist, ll_sum, ll_sq = None, 0.0, 0.0
        if s is not None:
            probs = class_probabilities(s, class_list, pos)
            hist = score_histogram(probs, ti, score_bins)
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
        """JSON-safe dict; histograms are stored sparsely (flat index, count).

        The format is documented in :mod:`watchkeeper.stats.classification_format`.
        """
        return aggregate_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`; :class:`InputError` on a malformed dict."""
        return aggregate_from_dict(cls, d)

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
        out.update(
            confusion_metrics(
                self.confusion,
                classes,
                confidence,
                n_bootstrap=n_bootstrap,
                seed=seed,
                positive_class=self.positive_class,
            )
        )
        out.update(self._score_metrics(confidence, out["per_class"]))
        return out

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
        headline, by_class = ranking_metrics(
            self.score_hist[idx],
            [self.classes[i] for i in idx],
            confidence,
            per_class=not binary,
            no_pos_reason=f"no rows of the positive class {self.positive_class!r} in y_true",
        )
        for name, extra in by_class.items():
            per_class[name].update(extra)
        return {**headline, "log_loss": log_loss}
