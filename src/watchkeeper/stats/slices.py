"""Failing slices from mergeable counts: is a slice's loss credibly higher than the rest's?

A *slice* is a cell of one feature's ranges or of a pair of features' ranges (coded by the
caller, :mod:`watchkeeper.slices`). Every cell keeps three sums over its labelled rows: the
row count ``n``, the loss sum ``s1`` and the squared-loss sum ``s2``. The loss is 0 / 1 (an
error) for classification and the absolute error for regression. The sums of a window are
those of its parts added (:meth:`SliceCounts.merge`), so a service can keep them per bucket.

Tests, one-sided (the slice is worse than the rest of the rows):

* 0 / 1 loss: Fisher's exact test of the 2 × 2 table (slice vs rest, error vs correct), its
  p-value the hypergeometric upper tail ``P(X >= errors in slice)`` (what
  ``scipy.stats.fisher_exact(..., alternative="greater")`` gives, vectorised);
* absolute error: Welch's t-test of the mean absolute error (``scipy.stats.ttest_ind(...,
  equal_var=False, alternative="greater")``), from the sums.

:func:`holm` adjusts p-values for the number of slices tested (Holm's step-down method: the
family-wise error rate is held under any dependence between the tests, which overlapping
slices have).

Examples
--------
>>> import numpy as np
>>> codes = {"c": (np.array([0, 0, 1, 1, 1, 1]), 2)}
>>> counts = SliceCounts.count(codes, np.array([1.0, 1.0, 0.0, 0.0, 0.0, 1.0]))
>>> counts.cells[("c",)].tolist()
[[2.0, 4.0], [2.0, 1.0], [2.0, 1.0]]
>>> [round(float(p), 3) for p in fisher_greater(np.array([2.0, 1.0]), np.array([2.0, 4.0]), 3, 6)]
[0.2, 1.0]
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.special import gammaln

from watchkeeper.errors import ProfileMismatchError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Key = tuple[str, ...]

__all__ = ["SliceCounts", "fisher_greater", "holm", "welch_greater"]


@dataclass
class SliceCounts:
    """Per cell of every feature and pair of features: ``[n, s1, s2]`` (a ``(3, cells)``
    array; a pair's cells are ``code_a * k_b + code_b``), and ``total`` over all rows."""

    cells: dict[Key, FloatArray]
    total: FloatArray

    @classmethod
    def count(
        cls,
        codes: Mapping[str, tuple[IntArray, int]],
        loss: FloatArray,
        *,
        pairs: bool = True,
    ) -> SliceCounts:
        """Count ``loss`` (one value per row) in the cells of each feature's ``codes`` (per
        row, in ``range(k)``) and, with ``pairs``, of each pair of features."""
        loss = np.asarray(loss, dtype=np.float64)
        squared = loss * loss
        # 0 / 1 losses (errors): the squares are the sums, and the sums count the error rows
        errors = np.flatnonzero(loss) if bool(np.all((loss == 0) | (loss == 1))) else None
        cells: dict[Key, FloatArray] = {}

        def sums(code: npt.NDArray[Any], k: int) -> FloatArray:
            n = np.bincount(code, minlength=k).astype(np.float64)
            if errors is not None:
                s1 = np.bincount(code[errors], minlength=k).astype(np.float64)
                return np.stack([n, s1, s1])
            s1w = np.bincount(code, weights=loss, minlength=k)
            return np.stack([n, s1w, np.bincount(code, weights=squared, minlength=k)])

        # the smallest unsigned type holding a cell (each code cast once per type): a pass
        # over the rows per pair is the costliest part, and narrow codes make it much faster
        typed: dict[tuple[str, Any], npt.NDArray[Any]] = {}

        def as_kind(name: str, kind: Any) -> npt.NDArray[Any]:
            if (name, kind) not in typed:
                typed[(name, kind)] = np.asarray(codes[name][0]).astype(kind, copy=False)
            return typed[(name, kind)]

        for name, (_, k) in codes.items():
            cells[(name,)] = sums(as_kind(name, _uint(k)), k)
        if pairs:
            for (a, (_, ka)), (b, (_, kb)) in itertools.combinations(codes.items(), 2):
                kind = _uint(ka * kb)
                cells[(a, b)] = sums(as_kind(a, kind) * kind(kb) + as_kind(b, kind), ka * kb)
        total = np.array([loss.size, loss.sum(), squared.sum()], dtype=np.float64)
        return cls(cells, total)

    def merge(self, other: SliceCounts) -> SliceCounts:
        """The counts of both sets of rows (the same features and ranges on both sides)."""
        if self.cells.keys() != other.cells.keys() or any(
            v.shape != other.cells[k].shape for k, v in self.cells.items()
        ):
            raise ProfileMismatchError("cannot merge slice counts of different features or ranges")
        return SliceCounts(
            {k: v + other.cells[k] for k, v in self.cells.items()}, self.total + other.total
        )


def _uint(cells: int) -> Any:
    return np.uint8 if cells <= 256 else np.uint16 if cells <= 65536 else np.int64


def fisher_greater(errors: FloatArray, n: FloatArray, total_errors: Any, total: Any) -> FloatArray:
    """One-sided Fisher exact p-values: a slice of ``n`` rows holding ``errors`` of the
    ``total_errors`` errors of ``total`` rows has more than its share (vectorised).

    The hypergeometric tail is summed from the observed count away from the mode, each term
    from the last by the pmf's ratio, until the terms no longer change the sum (scipy's
    ``hypergeom.sf`` sums the whole tail, seconds for thousands of slices of a large window):
    ``P(X >= k)`` above the mean, ``1 - P(X <= k - 1)`` below it. ``total_errors`` and
    ``total`` are numbers or arrays (one table per slice)."""
    k = np.rint(np.asarray(errors, dtype=np.float64))
    m = np.rint(np.asarray(n, dtype=np.float64))
    big_k = np.broadcast_to(np.rint(np.asarray(total_errors, dtype=np.float64)), k.shape)
    big_n = np.broadcast_to(np.rint(np.asarray(total, dtype=np.float64)), k.shape)
    lo, hi = np.maximum(0.0, m - (big_n - big_k)), np.minimum(m, big_k)
    upper = k > m * big_k / np.maximum(big_n, 1.0)
    j = np.where(upper, k, k - 1)
    inside = (j >= lo) & (j <= hi)
    log_pmf = _log_choose(big_k, j) + _log_choose(big_n - big_k, m - j) - _log_choose(big_n, m)
    term = np.where(inside, np.exp(np.where(inside, log_pmf, 0.0)), 0.0)
    tail = term.copy()
    active = np.flatnonzero(term > 0)
    while active.size:
        ja, up, ma = j[active], upper[active], m[active]
        ka, na = big_k[active], big_n[active]
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(
                up,
                (ka - ja) * (ma - ja) / ((ja + 1) * (na - ka - ma + ja + 1)),
                ja * (na - ka - ma + ja) / ((ka - ja + 1) * (ma - ja + 1)),
            )
        j[active] = ja + np.where(up, 1.0, -1.0)
        within = np.where(up, j[active] <= hi[active], j[active] >= lo[active])
        term[active] = np.where(within, term[active] * step, 0.0)
        tail[active] += term[active]
        active = active[term[active] > tail[active] * 1e-17]
    p = np.where(upper, tail, 1.0 - tail)
    return np.clip(p, 0.0, 1.0)


def _log_choose(a: Any, b: Any) -> Any:
    return gammaln(np.add(a, 1.0)) - gammaln(np.add(b, 1.0)) - gammaln(np.subtract(a, b) + 1.0)


def welch_greater(
    n: FloatArray, s1: FloatArray, s2: FloatArray, m: FloatArray, t1: FloatArray, t2: FloatArray
) -> FloatArray:
    """One-sided Welch t-test p-values that the mean of the slice (``n`` values, sum ``s1``,
    sum of squares ``s2``) exceeds the rest's (``m``, ``t1``, ``t2``); vectorised."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_a, mean_b = s1 / n, t1 / m
        var_a = np.maximum(s2 - n * mean_a**2, 0.0) / (n - 1)
        var_b = np.maximum(t2 - m * mean_b**2, 0.0) / (m - 1)
        va, vb = var_a / n, var_b / m
        se = np.sqrt(va + vb)
        t = (mean_a - mean_b) / se
        df = (va + vb) ** 2 / (va**2 / (n - 1) + vb**2 / (m - 1))
        p = stats.t.sf(t, df)
    # both sides constant: the slice is worse for certain, or not at all
    p = np.where(se > 0, p, np.where(mean_a > mean_b, 0.0, 1.0))
    return np.clip(np.nan_to_num(np.asarray(p, dtype=np.float64), nan=1.0), 0.0, 1.0)


def holm(p: npt.ArrayLike) -> FloatArray:
    """Holm's step-down adjusted p-values (reject where adjusted <= alpha).

    >>> holm([0.01, 0.04, 0.03]).tolist()
    [0.03, 0.06, 0.06]
    """
    values = np.asarray(p, dtype=np.float64)
    m = values.size
    if m == 0:
        return values.copy()
    order = np.argsort(values, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * values[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out
