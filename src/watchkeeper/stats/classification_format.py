"""The versioned, JSON-safe dict form of a classification aggregate.

Format version 1::

    {"kind": "classification", "version": 1, "classes": [str, ...], "pos_label": str | None,
     "score_bins": int, "skipped_rows": int, "confusion_matrix": [[int, ...], ...],
     "scores": None | {"hist_index": [int, ...], "hist_count": [int, ...],
                       "log_loss_sum": float, "log_loss_sq_sum": float}}

Score histograms are stored sparsely: the flat indices of the non-zero cells of the
(K, 2, score_bins) array and their counts. Used by
:meth:`~watchkeeper.stats.classification.ClassificationAggregate.to_dict` and
:meth:`~watchkeeper.stats.classification.ClassificationAggregate.from_dict`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InputError

if TYPE_CHECKING:
    from watchkeeper.stats.classification import ClassificationAggregate

__all__ = ["FORMAT_VERSION", "aggregate_from_dict", "aggregate_to_dict"]

FORMAT_VERSION = 1

IntArray = npt.NDArray[np.int64]
_A = TypeVar("_A", bound="ClassificationAggregate")


def aggregate_to_dict(agg: ClassificationAggregate) -> dict[str, Any]:
    """The dict form of ``agg`` (see the module docstring)."""
    scores = None
    if agg.score_hist is not None:
        flat = agg.score_hist.ravel()
        nz = np.flatnonzero(flat)
        scores = {
            "hist_index": nz.tolist(),
            "hist_count": flat[nz].tolist(),
            "log_loss_sum": agg.log_loss_sum,
            "log_loss_sq_sum": agg.log_loss_sq_sum,
        }
    return {
        "kind": "classification",
        "version": FORMAT_VERSION,
        "classes": list(agg.classes),
        "pos_label": agg.pos_label,
        "score_bins": agg.score_bins,
        "skipped_rows": agg.skipped_rows,
        "confusion_matrix": agg.confusion.tolist(),
        "scores": scores,
    }


def aggregate_from_dict(cls: type[_A], d: dict[str, Any]) -> _A:
    """Build a ``cls`` from its dict form; :class:`InputError` on a malformed dict."""
    if not isinstance(d, dict) or d.get("kind") != "classification":
        raise InputError("d must be a dict with kind == 'classification'")
    if d.get("version") != FORMAT_VERSION:
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


def _as_int(x: Any, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int | np.integer):
        raise InputError(f"{name} must be an integer, got {x!r}")
    return int(x)


def _int_array(x: Any, name: str) -> IntArray:
    arr = np.asarray(x)
    if arr.size and arr.dtype.kind not in "iu":
        raise InputError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)
