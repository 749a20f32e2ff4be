"""ADWIN: adaptive windowing (Bifet & Gavaldà 2007), river's variant, with a vectorised batch path.

The window holds every value since the last restart, summarised in an exponential histogram:
row ``i`` keeps at most ``max_buckets`` bucket totals of ``2**i`` values each; when a row
reaches ``max_buckets + 1`` its two oldest buckets merge into one of the next row (ADWIN2).
Every ``clock`` values (once more than ``grace_period`` were seen) each bucket boundary is a
cut ``W = W0 · W1``; a change is signalled when for some cut, with ``n0, n1`` values and means
``μ0, μ1`` on each side,

    |μ0 − μ1| > sqrt(2 · m · σ²_W · δ') + (2/3) · δ' · m,
    m = 1/(n0 − L + 1) + 1/(n1 − L + 1),   δ' = ln(2 · ln|W| / δ),

with ``L = min_window_length`` (both sides need at least ``L`` values) and ``σ²_W`` the window's
variance. After a detection the detector restarts with an empty window, as river's does; the
defaults are river's. Detections match river's ``drift.ADWIN`` (exactly on 0/1 streams, where
every sum is an integer).

Why ``update_many`` can be vectorised: between restarts nothing leaves the window, so the
bucket layout after ``n`` values depends on ``n`` alone (:func:`row_counts`). Every cut at every
check is then a fixed position in the stream, and its sums are differences of one cumulative
sum: all checks of a block are evaluated at once.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> stream = (rng.random(4000) < np.r_[np.full(2000, 0.1), np.full(2000, 0.3)]).astype(float)
>>> ADWIN().update_many(stream).tolist()
[2079]

References
----------
A. Bifet, R. Gavaldà (2007). Learning from time-changing data with adaptive windowing.
SIAM International Conference on Data Mining, 443-448.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper.errors import InputError
from watchkeeper.stats.detectors.base import Detector, FloatArray

__all__ = ["ADWIN", "row_counts"]

IntArray = NDArray[np.int64]


def row_counts(n: IntArray, max_buckets: int) -> list[IntArray]:
    """Buckets per row after ``n`` insertions with no deletion, for each ``n`` given.

    Row ``i`` receives ``t_i`` buckets (``t_0 = n``); it merges whenever it holds
    ``max_buckets + 1``, so it has merged ``m_i = 0`` times while ``t_i <= max_buckets`` and
    ``1 + (t_i - max_buckets - 1) // 2`` times after; each merge sends one bucket on
    (``t_{i+1} = m_i``) and the row keeps ``t_i - 2 m_i``.
    """
    t = np.asarray(n, dtype=np.int64)
    rows = []
    while True:
        merges = np.where(t > max_buckets, (t - max_buckets - 1) // 2 + 1, 0)
        rows.append(t - 2 * merges)
        if not merges.any():
            return rows
        t = merges


class ADWIN(Detector):
    """Adaptive windowing change detector for a bounded real-valued stream (see module doc).

    Parameters
    ----------
    delta
        Confidence of the cut test, in (0, 1); smaller means fewer false alarms, longer delays.
    clock
        Check the cuts every ``clock`` values.
    max_buckets
        Buckets kept per row of the exponential histogram before two merge.
    min_window_length
        Values each side of a cut needs to be tested.
    grace_period
        No check before this many values since the last restart.
    """

    type_name = "adwin"

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        if not 0 < delta < 1:
            raise InputError(f"delta must be in (0, 1), got {delta}")
        for name, value, low in (
            ("clock", clock, 1),
            ("max_buckets", max_buckets, 2),
            ("min_window_length", min_window_length, 1),
            ("grace_period", grace_period, 0),
        ):
            if not isinstance(value, int) or value < low:
                raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
        super().__init__()
        self.delta = float(delta)
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self._restart()

    def _restart(self) -> None:
        self._width = 0
        self._shift = 0.0  # values are stored minus the first value of the window
        self._total = 0.0  # sum of the shifted values in the window
        self._ssd = 0.0  # sum of squared deviations from the window mean
        self._rows: list[list[float]] = [[]]  # bucket totals per row, oldest first

    @property
    def width(self) -> int:
        """Values in the window (all values since the last restart)."""
        return self._width

    @property
    def estimation(self) -> float:
        """Mean of the window (0.0 when it is empty)."""
        return self._shift + self._total / self._width if self._width else 0.0

    @property
    def variance(self) -> float:
        """Population variance of the window (0.0 when it is empty)."""
        return self._ssd / self._width if self._width else 0.0

    # -- one value at a time --------------------------------------------------------------
    def _update_one(self, x: float) -> bool:
        if self._width == 0:
            self._shift = x
        y = x - self._shift
        self._width += 1
        n = self._width
        if n > 1:
            d = y - self._total / (n - 1)
            self._ssd += (n - 1) * d * d / n
        self._total += y
        rows = self._rows
        rows[0].append(y)
        i = 0
        while len(rows[i]) > self.max_buckets:
            if i + 1 == len(rows):
                rows.append([])
            row = rows[i]
            rows[i + 1].append(row[0] + row[1])
            del row[:2]
            i += 1
        if n % self.clock or n <= self.grace_period:
            return False
        return self._cut_found()

    def _cut_found(self) -> bool:
        n = float(self._width)
        low = self.min_window_length
        dprime = math.log(2.0 * math.log(n) / self.delta)
        var = self._ssd / n
        n0, u0 = 0.0, 0.0
        last = sum(len(r) for r in self._rows)
        seen = 0
        for i in range(len(self._rows) - 1, -1, -1):
            size = float(1 << i)
            for total in self._rows[i]:
                seen += 1
                if seen == last:
                    return False
                n0 += size
                u0 += total
                n1 = n - n0
                if n0 < low or n1 < low:
                    continue
                m = 1.0 / (n0 - low + 1.0) + 1.0 / (n1 - low + 1.0)
                eps = math.sqrt(2.0 * m * var * dprime) + 2.0 / 3.0 * dprime * m
                if abs(u0 / n0 - (self._total - u0) / n1) > eps:
                    return True
        return False

    # -- a block at a time ----------------------------------------------------------------
    def _scan(self, xs: FloatArray) -> int:
        n_old = self._width
        if n_old == 0:
            self._shift = float(xs[0])
        size = xs.size
        y = xs - self._shift
        new_sums = self._total + np.cumsum(y)  # P(n_old + j), j = 1..size
        # window sum of squared deviations after each new value (Chan et al.'s merge)
        centre = self._total / n_old if n_old else float(y[0])
        c = y - centre
        j = np.arange(1, size + 1, dtype=np.float64)
        s1, s2 = np.cumsum(c), np.cumsum(c * c)
        ssd_new = np.maximum(s2 - s1 * s1 / j, 0.0)
        mean_gap = (self._total / n_old - centre if n_old else 0.0) - s1 / j
        ssd = self._ssd + ssd_new + n_old * j / (n_old + j) * mean_gap * mean_gap

        widths = n_old + np.arange(1, size + 1, dtype=np.int64)
        checks = np.flatnonzero((widths % self.clock == 0) & (widths > self.grace_period))
        if checks.size:
            hit = self._first_cut(widths[checks], new_sums, ssd[checks], n_old)
            if hit >= 0:
                return int(checks[hit])
        self._width = n_old + size
        self._total = float(new_sums[-1])
        self._ssd = float(ssd[-1])
        self._rows = self._layout(new_sums, n_old)
        return -1

    def _old_boundaries(self) -> tuple[IntArray, FloatArray]:
        sizes, totals = [0], [0.0]
        for i in range(len(self._rows) - 1, -1, -1):
            sizes += [1 << i] * len(self._rows[i])
            totals += self._rows[i]
        return np.cumsum(sizes, dtype=np.int64), np.cumsum(totals)

    def _sums_at(self, pos: IntArray, new_sums: FloatArray, n_old: int) -> FloatArray:
        """Cumulative shifted sum at window positions ``pos`` (before the block: a boundary)."""
        old_pos, old_sums = self._old_boundaries()
        out = new_sums[np.clip(pos - n_old - 1, 0, new_sums.size - 1)]
        before = pos <= n_old
        if before.any():
            k = np.searchsorted(old_pos, pos[before])
            out[before] = old_sums[k]
        return out

    def _boundaries(self, widths: IntArray) -> tuple[IntArray, NDArray[np.bool_]]:
        """Positions of every bucket's end, oldest bucket first, per window width."""
        counts = row_counts(widths, self.max_buckets)
        cols = []
        valid = []
        for i in range(len(counts) - 1, -1, -1):
            for k in range(self.max_buckets):
                ok = counts[i] > k
                cols.append(np.where(ok, 1 << i, 0))
                valid.append(ok)
        return np.cumsum(np.stack(cols, axis=1), axis=1), np.stack(valid, axis=1)

    def _first_cut(
        self, widths: IntArray, new_sums: FloatArray, ssd: FloatArray, n_old: int
    ) -> int:
        pos, valid = self._boundaries(widths)
        w = widths[:, None].astype(np.float64)
        low = self.min_window_length
        n0 = pos.astype(np.float64)
        n1 = w - n0
        ok = valid & (n0 >= low) & (n1 >= low)
        u0 = self._sums_at(pos.ravel(), new_sums, n_old).reshape(pos.shape)
        u_all = self._sums_at(widths, new_sums, n_old)[:, None]
        n0s, n1s = np.where(ok, n0, float(low)), np.where(ok, n1, float(low))
        dprime = np.log(2.0 * np.log(w) / self.delta)
        m = 1.0 / (n0s - low + 1.0) + 1.0 / (n1s - low + 1.0)
        eps = np.sqrt(2.0 * m * (ssd[:, None] / w) * dprime) + 2.0 / 3.0 * dprime * m
        cut = ok & (np.abs(u0 / n0s - (u_all - u0) / n1s) > eps)
        rows = np.flatnonzero(cut.any(axis=1))
        return int(rows[0]) if rows.size else -1

    def _layout(self, new_sums: FloatArray, n_old: int) -> list[list[float]]:
        """The bucket rows after the block, rebuilt from the cumulative sums."""
        width = np.asarray([self._width], dtype=np.int64)
        pos, valid = self._boundaries(width)
        ends = pos[0][valid[0]]
        sums = self._sums_at(ends, new_sums, n_old)
        totals = np.diff(sums, prepend=0.0)
        sizes = np.diff(ends, prepend=0)
        rows: list[list[float]] = [[] for _ in range(int(sizes.max()).bit_length())]
        for size, total in zip(sizes.tolist(), totals.tolist(), strict=True):
            rows[int(size).bit_length() - 1].append(total)
        return rows or [[]]

    # -- state ------------------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        return {
            "delta": self.delta,
            "clock": self.clock,
            "max_buckets": self.max_buckets,
            "min_window_length": self.min_window_length,
            "grace_period": self.grace_period,
        }

    def _state(self) -> dict[str, Any]:
        return {
            "width": self._width,
            "shift": self._shift,
            "total": self._total,
            "ssd": self._ssd,
            "rows": [list(r) for r in self._rows],
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        rows = [[float(v) for v in r] for r in state["rows"]] or [[]]
        width = int(state["width"])
        if sum(len(r) << i for i, r in enumerate(rows)) != width:
            raise InputError("adwin state: the bucket rows do not add up to the window width")
        self._width = width
        self._shift = float(state["shift"])
        self._total = float(state["total"])
        self._ssd = float(state["ssd"])
        self._rows = rows
